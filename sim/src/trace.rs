//! `--trace FILE`: the run as JSON lines, one event per line, in the order
//! the simulator handled them. Written by hand (not through serde) because
//! a trace of a default run has millions of lines; every line is a JSON
//! object with `t` (virtual nanoseconds), `algo` and `ev`.

use std::io::{self, Write};

use tokenflight::check::Event;
use tokenflight::Phase;

/// Where a run's trace goes.
pub struct Trace {
    out: Box<dyn Write>,
    algo: &'static str,
    error: Option<io::Error>,
}

impl Trace {
    /// A trace of algorithm `algo` written to `out`.
    pub fn new(out: Box<dyn Write>, algo: &'static str) -> Self {
        Trace {
            out,
            algo,
            error: None,
        }
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_fmt(args) {
                self.error = Some(e);
            }
        }
    }

    /// One checker event.
    pub fn event(&mut self, t: u64, event: &Event) {
        let algo = self.algo;
        let pre = format_args!("{{\"t\":{t},\"algo\":\"{algo}\"");
        match *event {
            Event::Arrived { id } => {
                self.line(format_args!("{pre},\"ev\":\"arrived\",\"id\":{}}}\n", id.0))
            }
            Event::Sent { id, generation } => self.line(format_args!(
                "{pre},\"ev\":\"sent\",\"id\":{},\"gen\":{}}}\n",
                id.0, generation.0
            )),
            Event::Rejected { id, generation } => self.line(format_args!(
                "{pre},\"ev\":\"rejected\",\"id\":{},\"gen\":{}}}\n",
                id.0, generation.0
            )),
            Event::Waiting { id } => {
                self.line(format_args!("{pre},\"ev\":\"waiting\",\"id\":{}}}\n", id.0))
            }
            Event::Completed { id } => self.line(format_args!(
                "{pre},\"ev\":\"completed\",\"id\":{}}}\n",
                id.0
            )),
            Event::Failed { id } => {
                self.line(format_args!("{pre},\"ev\":\"failed\",\"id\":{}}}\n", id.0))
            }
            Event::Cancelled { id } => self.line(format_args!(
                "{pre},\"ev\":\"cancelled\",\"id\":{}}}\n",
                id.0
            )),
            Event::RefreshStarted { attempt } => self.line(format_args!(
                "{pre},\"ev\":\"refresh_started\",\"attempt\":{}}}\n",
                attempt.0
            )),
            Event::RefreshEnded { attempt, ok } => self.line(format_args!(
                "{pre},\"ev\":\"refresh_ended\",\"attempt\":{},\"ok\":{ok}}}\n",
                attempt.0
            )),
            Event::RefreshAbandoned { attempt } => self.line(format_args!(
                "{pre},\"ev\":\"refresh_abandoned\",\"attempt\":{}}}\n",
                attempt.0
            )),
            Event::RefreshDropped { attempt } => self.line(format_args!(
                "{pre},\"ev\":\"refresh_dropped\",\"attempt\":{}}}\n",
                attempt.0
            )),
            Event::NewGeneration {
                generation,
                expires_at,
                from,
            } => {
                let exp = expires_at.map_or("null".to_string(), |e| e.as_nanos().to_string());
                let from = from.map_or("null".to_string(), |a| a.0.to_string());
                self.line(format_args!(
                    "{pre},\"ev\":\"new_generation\",\"gen\":{},\"expires_at\":{exp},\"from\":{from}}}\n",
                    generation.0
                ))
            }
            Event::Invalidated { generation } => self.line(format_args!(
                "{pre},\"ev\":\"invalidated\",\"gen\":{}}}\n",
                generation.0
            )),
            Event::PhaseChanged { phase } => {
                let p = match phase {
                    Phase::Idle => "idle",
                    Phase::Refreshing => "refreshing",
                    Phase::Failed => "failed",
                };
                self.line(format_args!("{pre},\"ev\":\"phase\",\"phase\":\"{p}\"}}\n"))
            }
            _ => self.line(format_args!("{pre},\"ev\":\"other\"}}\n")),
        }
    }

    /// A fact the server or the network saw (`what` is a JSON fragment of
    /// further fields, starting with a comma, or empty).
    pub fn fact(&mut self, t: u64, ev: &str, what: std::fmt::Arguments<'_>) {
        let algo = self.algo;
        self.line(format_args!(
            "{{\"t\":{t},\"algo\":\"{algo}\",\"ev\":\"{ev}\"{what}}}\n"
        ));
    }

    /// Flushes; the first write error, if any.
    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

//! The HTML report: the comparison table and, per algorithm, an SVG
//! timeline of one slice of the run — requests as lanes, refresh calls as
//! shaded windows, rejections and failures marked. One self-contained file,
//! no scripts, no external resources.

use std::fmt::Write as _;

use crate::report::{self, Finding};
use crate::scenario::Scenario;
use crate::server::Server;
use crate::timeline::{Mark, Timeline};
use crate::world::{AlgoReport, Outcome, MS};

/// The slice of the run the timeline shows: around the moment the first
/// token dies at the server, when the first herd of rejections comes back.
pub fn window(sc: &Scenario) -> (u64, u64) {
    // The run's first server act is the login at time zero, so a fresh
    // server with the same seed issues the very same first token.
    let mut server = Server::new(sc);
    let first = server.login(0);
    let mut dies = first.expires_at;
    while dies > 0 && server.verdict(first.access, dies - 1) != crate::server::Verdict::Valid {
        dies -= MS.min(dies);
    }
    let from = dies.saturating_sub(150 * MS);
    (from, from + 700 * MS)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const W: f64 = 1240.0;
const LEFT: f64 = 70.0;
const LANE: f64 = 14.0;
const TOP: f64 = 24.0;

/// Colour of token generation `g` (cycled).
fn gen_colour(g: u64) -> &'static str {
    [
        "#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2",
    ][(g % 6) as usize]
}

/// The SVG timeline of one algorithm.
pub fn svg(tl: &Timeline, title: &str) -> String {
    let lanes = tl.lanes.len().max(1);
    let height = TOP + lanes as f64 * LANE + 40.0;
    let span = (tl.to - tl.from) as f64;
    let x = |t: u64| LEFT + (t.saturating_sub(tl.from) as f64 / span).min(1.02) * (W - LEFT - 20.0);
    let right = W - 20.0;
    let bottom = TOP + lanes as f64 * LANE;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img" aria-label="{}">"#,
        esc(title)
    );
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{W}" height="{height}" fill="#fff"/>"##
    );
    // Refresh windows, behind everything.
    for r in &tl.refreshes {
        let (end, class, fill) = match r.end {
            Some((e, true)) => (e, "refresh ok", "#cfe8ff"),
            Some((e, false)) => (e, "refresh failed", "#ffd6d6"),
            None => (tl.to, "refresh open", "#eeeeee"),
        };
        if end < tl.from || r.start > tl.to {
            continue;
        }
        let (x0, x1) = (x(r.start.max(tl.from)), x(end.min(tl.to)));
        let _ = write!(
            s,
            r#"<rect class="{class}" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{:.1}" fill="{fill}" opacity="0.8"><title>refresh call {} ({class})</title></rect>"#,
            (x1 - x0).max(1.5),
            bottom - TOP,
            r.call
        );
    }
    // Time axis.
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#444"/>"##
    );
    let step_ms = ((tl.to - tl.from) / MS / 7).max(1);
    let mut t = 0;
    while t * MS <= tl.to - tl.from {
        let xt = x(tl.from + t * MS);
        let _ = write!(
            s,
            r##"<line x1="{xt:.1}" y1="{bottom}" x2="{xt:.1}" y2="{:.1}" stroke="#444"/><text x="{xt:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="#444">{:.3} s</text>"##,
            bottom + 4.0,
            bottom + 15.0,
            (tl.from + t * MS) as f64 / 1e9
        );
        t += step_ms;
    }
    // Lanes.
    for (i, lane) in tl.lanes.iter().enumerate() {
        let y = TOP + i as f64 * LANE + LANE / 2.0;
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="9" text-anchor="end" fill="#666">#{}</text>"##,
            LEFT - 4.0,
            y + 3.0,
            lane.id
        );
        let end_x = lane.end.map_or(right, |(t, _)| x(t));
        let _ = write!(
            s,
            r##"<line class="lane" x1="{:.1}" y1="{y:.1}" x2="{end_x:.1}" y2="{y:.1}" stroke="#bbb" stroke-width="1.5"/>"##,
            x(lane.arrived)
        );
        // Waiting stretches: from a Wait mark to the next send or the end.
        for (k, &(t, m)) in lane.marks.iter().enumerate() {
            if m != Mark::Wait {
                continue;
            }
            let until = lane.marks[k + 1..]
                .iter()
                .find(|(_, m)| matches!(m, Mark::Send(_)))
                .map(|&(t, _)| x(t))
                .unwrap_or(end_x);
            let _ = write!(
                s,
                r##"<line class="wait" x1="{:.1}" y1="{y:.1}" x2="{until:.1}" y2="{y:.1}" stroke="#f0a500" stroke-width="5"><title>#{} waits for a refresh</title></line>"##,
                x(t),
                lane.id
            );
        }
        for &(t, m) in &lane.marks {
            let xt = x(t);
            match m {
                Mark::Send(g) => {
                    let _ = write!(
                        s,
                        r#"<circle class="send" cx="{xt:.1}" cy="{y:.1}" r="3" fill="{}"><title>#{} sent with token generation {g}</title></circle>"#,
                        gen_colour(g),
                        lane.id
                    );
                }
                Mark::Reject => {
                    let _ = write!(
                        s,
                        r##"<path class="reject" d="M{:.1},{:.1} l6,6 m0,-6 l-6,6" stroke="#d62728" stroke-width="2"><title>#{} rejected: token expired or revoked</title></path>"##,
                        xt - 3.0,
                        y - 3.0,
                        lane.id
                    );
                }
                Mark::Wait => {}
            }
        }
        match lane.end {
            Some((t, o)) => {
                let (class, fill, what) = match o {
                    Outcome::Completed => ("completed", "#2ca02c", "completed"),
                    Outcome::Failed => ("failed", "#d62728", "failed with an error"),
                    Outcome::Cancelled => ("cancelled", "#ff7f0e", "cancelled by its caller"),
                    Outcome::Lost => ("lost", "#7b2cbf", "answer swallowed"),
                };
                let _ = write!(
                    s,
                    r#"<rect class="end {class}" x="{:.1}" y="{:.1}" width="7" height="7" fill="{fill}"><title>#{} {what}</title></rect>"#,
                    x(t) - 3.5,
                    y - 3.5,
                    lane.id
                );
            }
            None => {
                let _ = write!(
                    s,
                    r##"<text class="hung" x="{:.1}" y="{:.1}" font-size="9" fill="#d62728">hung ▶</text>"##,
                    right - 34.0,
                    y + 3.0
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

fn findings(list: &[Finding]) -> String {
    let mut s = String::from("<ul class=\"findings\">");
    for f in list.iter().take(8) {
        let _ = write!(
            s,
            "<li><b>{}</b> [{}] at {:.3} s: {}</li>",
            esc(&f.rule),
            esc(&f.source),
            f.at_ms / 1000.0,
            esc(&f.detail)
        );
    }
    s.push_str("</ul>");
    s
}

/// The whole page.
pub fn page(sc: &Scenario, reports: &[AlgoReport], throughput: f64) -> String {
    let refs: Vec<&AlgoReport> = reports.iter().collect();
    let table = report::table(&refs);
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>tokenflight simulation report</title><style>");
    s.push_str("body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1300px}pre{background:#f6f6f6;padding:12px;font-size:13px}h2{margin-top:28px}.legend span{display:inline-block;margin-right:16px;font-size:13px}.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}.findings{font-size:13px}");
    s.push_str("</style></head><body>");
    let _ = write!(
        s,
        "<h1>tokenflight vs the recipe</h1><p>Seed {}: {} requests from {} streams at {:.0} req/s; access tokens live {} ms ± {} ms; faults for the first {} ms, then healed. Simulator throughput: {:.2} M requests/s.</p>",
        sc.seed, sc.requests, sc.streams, sc.rate, sc.ttl_ms, sc.ttl_jitter_ms, sc.fault_ms, throughput / 1e6
    );
    let _ = write!(s, "<pre class=\"table\">{}</pre>", esc(&table));
    let _ = write!(
        s,
        "<pre class=\"rules\">{}</pre>",
        esc(&report::violations_by_rule(&refs))
    );
    s.push_str("<div class=\"legend\"><span><i class=\"sw\" style=\"background:#cfe8ff\"></i>refresh call (ok)</span><span><i class=\"sw\" style=\"background:#ffd6d6\"></i>refresh call (failed)</span><span><i class=\"sw\" style=\"background:#f0a500\"></i>waiting</span><span style=\"color:#1f77b4\">● send (colour: token generation)</span><span style=\"color:#d62728\">✕ rejected</span><span><i class=\"sw\" style=\"background:#2ca02c\"></i>completed</span><span><i class=\"sw\" style=\"background:#d62728\"></i>failed</span><span><i class=\"sw\" style=\"background:#ff7f0e\"></i>cancelled</span><span><i class=\"sw\" style=\"background:#7b2cbf\"></i>answer swallowed</span></div>");
    for r in reports {
        let _ = write!(s, "<h2 id=\"{0}\">{0}</h2>", esc(r.algorithm));
        if let Some(tl) = &r.timeline {
            let _ = write!(
                s,
                "<p>Requests arriving between {:.2} s and {:.2} s (a sample of {} lanes), around the first expiry.</p>",
                tl.from as f64 / 1e9,
                tl.to as f64 / 1e9,
                tl.lanes.len()
            );
            s.push_str(&svg(tl, r.algorithm));
        }
        if r.violations.is_empty() {
            s.push_str("<p>No violations.</p>");
        } else {
            let _ = write!(
                s,
                "<p>First violations ({} in all):</p>",
                r.violation_count()
            );
            s.push_str(&findings(&r.violations));
        }
    }
    s.push_str("</body></html>\n");
    s
}

//! The numbers of a run, and the terminal table that puts tokenflight and
//! the recipe side by side.

use std::fmt::Write as _;

use serde::Serialize;

use crate::world::AlgoReport;

/// Added latency of completed requests: the time from arrival to the send
/// that got the answer (zero when the first send did).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Worst, ms.
    pub max_ms: f64,
}

/// What one algorithm did in one run, counted by the simulator itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Requests started.
    pub requests: u64,
    /// Ended with the server's answer.
    pub completed: u64,
    /// Ended with a typed error.
    pub failed: u64,
    /// Given up on by their caller.
    pub cancelled: u64,
    /// Ended with something the caller cannot tell from success.
    pub lost: u64,
    /// Never ended.
    pub hung: u64,
    /// Ended more than once.
    pub duplicated: u64,
    /// API calls sent.
    pub sends: u64,
    /// API calls the server rejected (expired or revoked token).
    pub rejections: u64,
    /// Sends with a token already known to be bad (the checker's S5).
    pub stale_sends: u64,
    /// Refresh calls sent.
    pub refresh_calls: u64,
    /// Refresh calls that brought tokens.
    pub refreshes_ok: u64,
    /// Tokens that needed replacing (rejected, expired or due).
    pub expiries: u64,
    /// Refresh calls for a token that was still good (valid at the server
    /// and not yet due): a second refresh for one expiry.
    pub double_refreshes: u64,
    /// Sessions the server revoked because a refresh token was used twice.
    pub reuse_revocations: u64,
    /// Refresh calls that went out while an earlier one was still
    /// outstanding at the endpoint, whether the client still waited for it,
    /// had timed it out, or had dropped it.
    pub overlapping_calls: u64,
    /// Of those, calls that overlapped one the client had given up for good.
    pub overlaps_with_dropped: u64,
    /// Refresher calls the client gave up for good (dropped their future).
    pub calls_dropped: u64,
    /// Refresh-token reuses of a rotation the endpoint answered to a call
    /// the client had given up for good.
    pub reuses_after_drop: u64,
    /// Sessions revoked by an injected fault.
    pub revocations: u64,
    /// New logins the user had to do.
    pub relogins: u64,
    /// Added latency of completed requests.
    pub latency: LatencyStats,
    /// Of requests that arrived while faults were injected.
    pub latency_fault: LatencyStats,
    /// Of requests that arrived after healing.
    pub latency_healthy: LatencyStats,
    /// Simulator events handled.
    pub events: u64,
    /// Virtual time simulated, s.
    pub virtual_secs: f64,
}

impl Stats {
    /// Successful refreshes per token that needed one.
    pub fn refreshes_per_expiry(&self) -> f64 {
        if self.expiries == 0 {
            return 0.0;
        }
        self.refreshes_ok as f64 / self.expiries as f64
    }
}

/// One broken rule, with when and what.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Who noticed: the shared checker, the server, the watchdog, the
    /// simulator's own books.
    pub source: String,
    /// Which rule.
    pub rule: String,
    /// When, virtual ms.
    pub at_ms: f64,
    /// What.
    pub detail: String,
}

impl Finding {
    /// What the shared checker found, with its count per rule.
    pub fn from_checker(
        monitor: &tokenflight::check::Monitor,
    ) -> (Vec<Finding>, [u64; tokenflight::check::Rule::ALL.len()]) {
        let findings = monitor
            .violations()
            .iter()
            .map(|v| Finding {
                source: "checker".into(),
                rule: format!("{:?}", v.rule),
                at_ms: v.at.as_nanos() as f64 / crate::world::MS as f64,
                detail: v.detail.clone(),
            })
            .collect();
        (
            findings,
            tokenflight::check::Rule::ALL.map(|r| monitor.count(r)),
        )
    }
}

/// The comparison table, one column per algorithm.
pub fn table(reports: &[&AlgoReport]) -> String {
    type Row = (&'static str, fn(&AlgoReport) -> String);
    let n = |v: u64| v.to_string();
    let _ = n;
    let rows: &[Row] = &[
        ("requests", |r| r.stats.requests.to_string()),
        ("completed", |r| r.stats.completed.to_string()),
        ("failed (typed error)", |r| r.stats.failed.to_string()),
        ("cancelled by caller", |r| r.stats.cancelled.to_string()),
        ("refresh calls", |r| r.stats.refresh_calls.to_string()),
        ("refreshes (ok)", |r| r.stats.refreshes_ok.to_string()),
        ("refreshes per expiry", |r| {
            format!("{:.2}", r.stats.refreshes_per_expiry())
        }),
        ("double refreshes", |r| r.stats.double_refreshes.to_string()),
        ("refresher calls overlapping", |r| {
            r.stats.overlapping_calls.to_string()
        }),
        ("  of them beside a call given up", |r| {
            r.stats.overlaps_with_dropped.to_string()
        }),
        ("refresher calls given up for good", |r| {
            r.stats.calls_dropped.to_string()
        }),
        ("refresh-token reuse revocations", |r| {
            r.stats.reuse_revocations.to_string()
        }),
        ("  of them after a call given up", |r| {
            r.stats.reuses_after_drop.to_string()
        }),
        ("forced re-logins", |r| r.stats.relogins.to_string()),
        ("lost (answer swallowed)", |r| r.stats.lost.to_string()),
        ("hung (never ended)", |r| r.stats.hung.to_string()),
        ("duplicated", |r| r.stats.duplicated.to_string()),
        ("stale sends", |r| r.stats.stale_sends.to_string()),
        ("added latency p50", |r| ms(r.stats.latency.p50_ms)),
        ("added latency p99", |r| ms(r.stats.latency.p99_ms)),
        ("added latency max", |r| ms(r.stats.latency.max_ms)),
        ("added latency p99, faults", |r| {
            ms(r.stats.latency_fault.p99_ms)
        }),
        ("added latency p99, healthy", |r| {
            ms(r.stats.latency_healthy.p99_ms)
        }),
        ("added latency max, healthy", |r| {
            ms(r.stats.latency_healthy.max_ms)
        }),
        ("contract violations", |r| r.violation_count().to_string()),
    ];
    let mut cells: Vec<Vec<String>> = vec![];
    let mut head = vec![String::new()];
    head.extend(reports.iter().map(|r| r.algorithm.to_string()));
    cells.push(head);
    for (name, f) in rows {
        let mut row = vec![name.to_string()];
        row.extend(reports.iter().map(|r| f(r)));
        cells.push(row);
    }
    let widths: Vec<usize> = (0..cells[0].len())
        .map(|c| cells.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    let rule: String = widths
        .iter()
        .map(|w| "─".repeat(w + 2))
        .collect::<Vec<_>>()
        .join("┼");
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if c == 0 {
                    format!(" {s:<w$} ", w = widths[c])
                } else {
                    format!(" {s:>w$} ", w = widths[c])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", line.join("│"));
        if i == 0 {
            let _ = writeln!(out, "{rule}");
        }
    }
    out
}

/// Violations by rule, for every algorithm, skipping rules nobody broke.
pub fn violations_by_rule(reports: &[&AlgoReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let broken: Vec<String> = r
            .rule_counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        if broken.is_empty() {
            let _ = writeln!(out, "{}: no violations", r.algorithm);
        } else {
            let _ = writeln!(out, "{}: {}", r.algorithm, broken.join(", "));
        }
    }
    out
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2} s", v / 1000.0)
    } else {
        format!("{v:.1} ms")
    }
}

/// The `--json` object: the scenario, a section per algorithm, and the
/// simulator's own throughput.
pub fn json_summary(
    sc: &crate::Scenario,
    reports: &[&AlgoReport],
    wall_secs: f64,
    requests_per_sec: f64,
) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("scenario".into(), serde_json::json!(sc));
    for r in reports {
        let mut section = serde_json::to_value(r).unwrap_or_default();
        if let Some(s) = section.as_object_mut() {
            s.insert(
                "refreshes_per_expiry".into(),
                serde_json::json!(r.stats.refreshes_per_expiry()),
            );
            s.insert(
                "violation_count".into(),
                serde_json::json!(r.violation_count()),
            );
        }
        obj.insert(r.algorithm.to_string(), section);
    }
    let requests: u64 = reports.iter().map(|r| r.stats.requests).sum();
    obj.insert(
        "simulator".into(),
        serde_json::json!({
            "requests": requests,
            "wall_secs": wall_secs,
            "requests_per_sec": requests_per_sec,
        }),
    );
    serde_json::Value::Object(obj)
}

//! What a trace shows, as named facts, and the random scripts picked for
//! them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::itf::get_int;
use crate::{oracle, script};

const MS: u64 = 1_000_000;

/// What a trace shows, as named facts: every input, answer, action, phase
/// and error kind, each input in each phase it came in, and the situations
/// that a port most often gets wrong (time going backwards, a timer at its
/// exact deadline, resumes in an order other than the joins', a third
/// attempt in one round, late answers adopted or ignored, forged leases,
/// saturated times, skew jitter on an expiring token).
pub fn features(trace: &Value) -> BTreeSet<String> {
    let mut f = BTreeSet::new();
    let Some(states) = trace["states"].as_array() else {
        return f;
    };
    let config = &states[0]["input"]["value"]["config"];
    let jitter = get_int(&config["skew_jitter_ns"]).unwrap_or(0) > 0;
    let mut latest = 0;
    let mut joined: Vec<u64> = Vec::new();
    let mut leases: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut last_attempt = 0;
    // Calls that outlived their attempt (a soft timeout, a login) and
    // calls given up for good.
    let mut late: BTreeSet<u64> = BTreeSet::new();
    let mut dropped: BTreeSet<u64> = BTreeSet::new();
    let mut round_attempts = 0;
    let tag = |v: &Value| v["tag"].as_str().unwrap_or("?").to_string();
    let error = |f: &mut BTreeSet<String>, v: &Value| {
        if let Some(e) = v["error"]["tag"].as_str() {
            f.insert(format!("error:{e}"));
        }
    };
    for (i, s) in states.iter().enumerate() {
        let (input, answer) = (&s["input"], &s["answer"]);
        let now = get_int(&s["now"]).unwrap_or(0);
        let phase = s["phase"].as_str().unwrap_or("?");
        f.insert(format!("input:{}", tag(input)));
        f.insert(format!("answer:{}", tag(answer)));
        f.insert(format!("phase:{phase}"));
        error(&mut f, &answer["value"]);
        if i == 0 {
            continue;
        }
        let before = &states[i - 1];
        let v = &input["value"];
        let was = before["phase"].as_str().unwrap_or("?");
        f.insert(format!("input:{}@{was}", tag(input)));
        f.insert(format!("{}->{}@{was}->{phase}", tag(input), tag(answer)));
        if now < latest {
            f.insert("time-backwards".into());
        }
        latest = latest.max(now);
        if now >= u64::MAX - 1_000 * MS || s["timeout"]["value"] == crate::itf::int(u64::MAX) {
            f.insert("time-saturated".into());
        }
        let id = get_int(&v["id"]).ok();
        match tag(input).as_str() {
            "Timeout" => {
                if before["timeout"]["value"] == s["now"] {
                    f.insert("timer-at-deadline".into());
                }
                let due = get_int(&before["timeout"]["value"]).is_ok_and(|t| now >= t);
                if let (true, Ok(a)) = (due, get_int(&s["outstanding"]["value"])) {
                    late.insert(a);
                }
            }
            "Reject" => {
                let lease = (
                    get_int(&v["generation"]).unwrap_or(0),
                    get_int(&v["send"]).unwrap_or(0),
                );
                if id.and_then(|id| leases.get(&id)) != Some(&lease) {
                    f.insert("forged-lease".into());
                }
            }
            "Refreshed" => {
                let a = get_int(&v["attempt"]).unwrap_or(0);
                let made = s["generation"] != before["generation"];
                let outstanding = get_int(&before["outstanding"]["value"]).ok();
                if late.contains(&a) && outstanding == Some(a) {
                    f.insert(format!(
                        "late-answer-{}",
                        if made { "adopted" } else { "ignored" }
                    ));
                    if !s["actions"].as_array().is_none_or(Vec::is_empty)
                        && before["phase"] == "Refreshing"
                        && !made
                    {
                        f.insert("late-answer-starts-queued-attempt".into());
                    }
                }
                if dropped.contains(&a) {
                    f.insert("answer-of-abandoned-call".into());
                }
                if a > last_attempt || a == 0 {
                    f.insert("answer-of-unknown-attempt".into());
                }
            }
            "SetToken" => {
                if before["phase"] == "Refreshing" {
                    f.insert("login-during-refresh".into());
                }
                if let Ok(a) = get_int(&s["outstanding"]["value"]) {
                    late.insert(a);
                }
            }
            "Cancel" if answer["value"]["was_waiting"] == false => {
                f.insert("cancel-not-waiting".into());
            }
            _ => {}
        }
        if matches!(tag(input).as_str(), "SetToken" | "Refreshed")
            && jitter
            && !v["expires_at"].is_null()
            && (v["expires_at"]["tag"] == "Some"
                || v["result"]["value"]["expires_at"]["tag"] == "Some")
        {
            f.insert("skew-jitter-on-expiring-token".into());
        }
        if let (Some(id), "Send") = (id, tag(answer).as_str()) {
            let g = get_int(&answer["value"]["generation"]).unwrap_or(0);
            let send = get_int(&answer["value"]["send"]).unwrap_or(0);
            leases.insert(id, (g, send));
        }
        if let (Some(id), "Wait") = (id, tag(answer).as_str()) {
            joined.push(id);
        }
        let mut delivered = Vec::new();
        for a in s["actions"].as_array().into_iter().flatten() {
            f.insert(format!("action:{}", tag(a)));
            f.insert(format!("action:{}@{phase}", tag(a)));
            error(&mut f, &a["value"]);
            let av = &a["value"];
            match tag(a).as_str() {
                "StartRefresh" => {
                    last_attempt = get_int(&av["attempt"]).unwrap_or(0);
                    round_attempts += 1;
                    if round_attempts >= 3 {
                        f.insert("third-attempt-in-a-round".into());
                    }
                }
                "AbandonRefresh" => {
                    dropped.insert(get_int(&av["attempt"]).unwrap_or(0));
                }
                "Resume" | "Fail" => {
                    let id = get_int(&av["id"]).unwrap_or(0);
                    delivered.push(id);
                    if tag(a) == "Resume" {
                        let g = get_int(&av["generation"]).unwrap_or(0);
                        let send = get_int(&av["send"]).unwrap_or(0);
                        leases.insert(id, (g, send));
                    }
                }
                _ => {}
            }
        }
        if delivered.len() >= 2 {
            let in_join: Vec<u64> = joined
                .iter()
                .copied()
                .filter(|j| delivered.contains(j))
                .collect();
            if in_join != delivered {
                f.insert("delivered-out-of-join-order".into());
            }
        }
        joined.retain(|j| !delivered.contains(j));
        if phase != "Refreshing" {
            round_attempts = 0;
        }
    }
    f
}

/// How many random scripts the generator looks at, and at most how many it
/// keeps.
const CANDIDATES: u64 = 4_000;
const PICKED: usize = 16;

/// Random scripts picked for what they show: greedily, the one that adds
/// the most [`features`] not yet shown by the scripts already picked, until
/// none adds anything. They are a second set, independent of the
/// hand-written one: hostile inputs nobody thought to write down.
pub(super) fn picked() -> Vec<(u64, script::Script)> {
    let mut shown = BTreeSet::new();
    let shown = &mut shown;
    let mut pool: Vec<(u64, script::Script, BTreeSet<String>)> = (0..CANDIDATES)
        .filter_map(|seed| {
            let s = crate::random_script::draw(seed);
            let t = oracle::trace(&s, "").ok()?;
            Some((seed, s, features(&t)))
        })
        .collect();
    let mut out = Vec::new();
    while out.len() < PICKED {
        let best = pool
            .iter()
            .enumerate()
            .map(|(i, (_, _, f))| (f.difference(shown).count(), std::cmp::Reverse(i)))
            .max();
        let Some((gain, std::cmp::Reverse(i))) = best else {
            break;
        };
        if gain == 0 {
            break;
        }
        let (seed, s, f) = pool.swap_remove(i);
        shown.extend(f);
        out.push((seed, s));
    }
    out
}

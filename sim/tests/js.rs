//! The JavaScript front-end's suite (`js/`), so that `cargo test` runs
//! everything: the JS core against every vector and against this crate's
//! oracle on random scripts, the wx and fetch front-ends judged by this
//! crate's judge, and every planted JS bug caught. Where Node.js is not
//! installed the suite is skipped, and a line on stderr says so.
//!
//! `TOKENFLIGHT_DIFF_SCRIPTS` sets the number of differential scripts (CI
//! runs 100 000).

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Bypasses the test harness's capture, so the line shows in every run.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn version(tool: &str) -> Option<String> {
    let out = Command::new(tool).arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
// Wall-clock time, read only to report how long the JS suite took.
#[allow(clippy::disallowed_methods)]
fn js_suite_passes() {
    let (Some(node), Some(npm)) = (version("node"), version("npm")) else {
        say("js: Node.js/npm not found, the JS suite (js/) was skipped");
        return;
    };
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("../js");
    let npm_cmd = |args: &[&str]| {
        let mut c = Command::new("npm");
        c.args(args)
            .current_dir(&js)
            .env("NPM_CONFIG_UPDATE_NOTIFIER", "false")
            .env("NPM_CONFIG_FUND", "false")
            .env("NPM_CONFIG_AUDIT", "false")
            .env("TOKENFLIGHT_SIM", env!("CARGO_BIN_EXE_tokenflight-sim"));
        c
    };
    if !js.join("node_modules").exists() {
        let ci = npm_cmd(&["ci", "--offline"]).output().expect("npm ci runs");
        assert!(
            ci.status.success(),
            "npm ci failed:\n{}",
            String::from_utf8_lossy(&ci.stderr)
        );
    }
    let started = Instant::now();
    let out = npm_cmd(&["test", "--silent"])
        .output()
        .expect("npm test runs");
    let secs = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.starts_with("# vectors:")
                || l.starts_with("# differential")
                || l.starts_with("# config vector")
                || l.starts_with("# pass")
                || l.starts_with("# fail")
        })
        .collect();
    say(&format!(
        "js: node {node}, npm {npm}: JS suite {} in {secs:.1} s ({})",
        if out.status.success() {
            "passed"
        } else {
            "FAILED"
        },
        summary.join("; ").replace("# ", "")
    ));
    assert!(
        out.status.success(),
        "the JS suite failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

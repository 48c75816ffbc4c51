//! What the command-line tests share: running the simulator's binary.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `tokenflight-sim ARGS` with `input` on stdin: (exit code, stdout).
pub(crate) fn run_sim(args: &[&str], input: &str) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenflight-sim"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

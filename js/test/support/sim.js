// The reference simulator binary (oracle and judge): $TOKENFLIGHT_SIM, or
// built once from this repository with cargo.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));

let cached;
const subs = new Map();

/** {path} of a sim binary with subcommand `sub`, or {missing: why}. */
export function simBinary(sub = 'oracle') {
  const bin = binary();
  if (!bin.path) return bin;
  if (!subs.has(sub)) {
    const probe = spawnSync(bin.path, [sub, '--help'], { encoding: 'utf8' });
    subs.set(sub, probe.status === 0 ? bin : { missing: `${bin.path} has no \`${sub}\` subcommand yet` });
  }
  return subs.get(sub);
}

function binary() {
  if (cached) return cached;
  let path = process.env.TOKENFLIGHT_SIM;
  if (!path) {
    const build = spawnSync('cargo', ['build', '--release', '-q', '-p', 'tokenflight-sim'], {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
    if (build.error || build.status !== 0) {
      cached = { missing: `cargo build of tokenflight-sim failed: ${build.error?.message ?? build.stderr.slice(-400)}` };
      return cached;
    }
    const target = process.env.CARGO_TARGET_DIR ?? join(REPO, 'target');
    path = join(target, 'release', 'tokenflight-sim');
  }
  if (!existsSync(path)) {
    cached = { missing: `no sim binary at ${path}` };
    return cached;
  }
  cached = { path };
  return cached;
}

/** Runs `sim sub args` with `input` on stdin: {status, stdout, stderr}. */
export function runSim(sub, input, args = []) {
  const sim = simBinary(sub);
  if (!sim.path) throw new Error(sim.missing);
  const r = spawnSync(sim.path, [sub, ...args], { input, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (r.error) throw r.error;
  return r;
}

/** The oracle's trace (parsed JSON, or {error}) for each script line. */
export function oracle(lines) {
  const r = runSim('oracle', lines.join('\n') + '\n');
  if (r.status !== 0) throw new Error(`oracle exited ${r.status}: ${r.stderr.slice(-400)}`);
  const out = r.stdout.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l));
  if (out.length !== lines.length) throw new Error(`oracle gave ${out.length} traces for ${lines.length} scripts`);
  return out;
}

/** The judge's verdict on a history (JSON-lines text): {status, report}. */
export function judge(history, args = []) {
  const r = runSim('judge', history, args);
  return { status: r.status, report: r.stdout + r.stderr };
}

// Judging a recorded run with the reference judge, when it is built.

import assert from 'node:assert/strict';

import { judge, simBinary } from './sim.js';

export const judgeMissing = simBinary('judge').missing;
let told = false;

/** The judge's verdict {status, report}, or null when there is no judge. */
export function verdict(history) {
  if (judgeMissing) {
    if (!told) console.log(`judge: skipped, ${judgeMissing}`);
    told = true;
    return null;
  }
  const v = judge(history, ['--heal', '--json']);
  let parsed = null;
  try {
    parsed = JSON.parse(v.report.trim().split('\n')[0]);
  } catch {
    // not a verdict: malformed input (exit 2) prints a typed error instead
  }
  return { ...v, verdict: parsed };
}

/** The run must pass every rule. */
export function assertJudged(history) {
  const v = verdict(history);
  if (!v) return;
  assert.equal(v.status, 0, `the judge failed the run:\n${v.report}\n${history.slice(0, 4000)}`);
  assert.ok(v.verdict.events > 1, 'the judge saw the run');
}

/** The run must fail, on one of `rules`; returns the rules it failed. */
export function assertCaught(history, rules) {
  const v = verdict(history);
  if (!v) return null;
  assert.equal(v.status, 1, `the judge passed (or could not read) the run:\n${v.report}`);
  const failed = failedRules(v);
  assert.ok(rules.some((r) => failed.includes(r)), `expected one of ${rules} in the verdict, got ${failed}:\n${v.report}`);
  return failed;
}

/** The rules a verdict counts a violation of. */
export function failedRules(v) {
  return Object.entries(v.verdict?.counts ?? {}).filter(([, n]) => n > 0).map(([r]) => r);
}

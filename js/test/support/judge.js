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
  return judge(history);
}

/** The run must pass every rule. */
export function assertJudged(history) {
  const v = verdict(history);
  if (v) assert.equal(v.status, 0, `the judge failed the run:\n${v.report}\n${history.slice(0, 4000)}`);
}

/** The run must fail, on one of `rules`; returns the rules it failed. */
export function assertCaught(history, rules) {
  const v = verdict(history);
  if (!v) return null;
  assert.equal(v.status, 1, `the judge passed (or could not read) the run:\n${v.report}`);
  const failed = failedRules(v.report);
  assert.ok(rules.some((r) => failed.includes(r)), `expected one of ${rules} in the verdict, got ${failed}:\n${v.report}`);
  return failed;
}

/** The rules a verdict names with a non-zero count. */
export function failedRules(report) {
  const rules = new Set();
  for (const m of report.matchAll(/\b(S1|S2|S3|S4|S5b|S5|S6|S7|L1)\b[^\n]*?(\d+)/g)) {
    if (Number(m[2]) > 0) rules.add(m[1]);
  }
  for (const m of report.matchAll(/first violation[^\n]*?\b(S1|S2|S3|S4|S5b|S5|S6|S7|L1)\b/gi)) rules.add(m[1]);
  return [...rules];
}

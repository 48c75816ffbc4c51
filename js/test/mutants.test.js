// Every planted bug must be caught: by the vectors, by the differential
// test against the oracle, or by the judge on a run of the wx client.
// Prints the table of which catches which.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { mutants } from '../src/mutants.js';
import { corpus, firstDisagreement } from './support/differential.js';
import { judgeMissing, verdict, failedRules } from './support/judge.js';
import { scenarios } from './support/scenarios.js';
import { simBinary } from './support/sim.js';
import { loadVectors, replay } from './support/vectors.js';

const SCRIPTS = Number(process.env.TOKENFLIGHT_MUTANT_SCRIPTS ?? 12_000);
const missing = simBinary('oracle').missing ?? judgeMissing;

async function judged(mutant) {
  const failed = [];
  const rules = new Set();
  for (const [name, run] of Object.entries(scenarios)) {
    const v = verdict(await run(mutant));
    if (v.status !== 0) {
      failed.push(name);
      for (const r of failedRules(v)) rules.add(r);
    }
  }
  return { failed, rules: [...rules].sort() };
}

test('the judge passes every scenario of the correct client', { skip: judgeMissing }, async () => {
  const { failed } = await judged(null);
  assert.deepEqual(failed, []);
});

test(`every planted bug is caught (vectors, ${SCRIPTS} differential scripts, judged wx runs)`, { skip: missing }, async () => {
  const vectors = loadVectors();
  const set = corpus(SCRIPTS);
  const rows = [];
  for (const [name, m] of Object.entries(mutants)) {
    const row = { name, layer: m.layer, breaks: m.breaks, vectors: '-', differential: '-' };
    if (m.layer === 'core') {
      row.vectors = vectors.filter((v) => replay(v, name).index >= 0).length;
      const first = firstDisagreement(set, name);
      row.differential = first < 0 ? 0 : `script ${first + 1}`;
    }
    const j = await judged(name);
    row.judge = j.failed.length ? `${j.failed.length} (${j.rules.join(' ')})` : 0;
    row.caught = row.vectors > 0 || row.differential !== 0 || j.failed.length > 0;
    rows.push(row);
  }
  const table = [
    `| planted bug | layer | breaks | vectors failed (of ${vectors.length}) | differential: first disagreeing script (of ${SCRIPTS}) | judged runs failed (of ${Object.keys(scenarios).length}), rules |`,
    '|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${r.layer} | ${r.breaks} | ${r.vectors} | ${r.differential} | ${r.judge} |`),
  ].join('\n');
  console.log(`mutants:\n${table}`);
  const missed = rows.filter((r) => !r.caught).map((r) => r.name);
  assert.deepEqual(missed, [], `planted bugs nobody caught: ${missed}`);
  assert.ok(rows.length >= 20);
});

// The JS core against the reference core on random scripts: every state of
// every trace must be the same. TOKENFLIGHT_DIFF_SCRIPTS sets the count.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { differential, explain, shrink } from './support/differential.js';
import { simBinary } from './support/sim.js';

const COUNT = Number(process.env.TOKENFLIGHT_DIFF_SCRIPTS ?? 20_000);
const sim = simBinary();

test(`the JS core agrees with the oracle on ${COUNT} random scripts`, { skip: sim.missing }, () => {
  const started = performance.now();
  const r = differential({ count: COUNT });
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`differential: ${r.scripts} scripts, ${r.states} states, ${r.disagreeing} disagreements, ${secs} s`);
  if (r.disagreeing > 0) {
    const { seed, script } = r.disagreements[0];
    const short = shrink(script);
    assert.fail(`${r.disagreeing} of ${r.scripts} scripts disagree; seed ${seed}, shrunk:\n${explain(short)}`);
  }
});

if (sim.missing) console.log(`differential: skipped, ${sim.missing}`);

// The JS core against the reference core on random scripts: every state of
// every trace must be the same. TOKENFLIGHT_DIFF_SCRIPTS sets the count.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { differential, explain, kitScripts, shrink } from './support/differential.js';
import { simBinary } from './support/sim.js';

const COUNT = Number(process.env.TOKENFLIGHT_DIFF_SCRIPTS ?? 20_000);
const KIT_COUNT = Number(process.env.TOKENFLIGHT_KIT_SCRIPTS ?? 10_000);
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

test(`the JS core agrees with the oracle on ${KIT_COUNT} scripts of the reference generator`, { skip: simBinary('scripts').missing }, () => {
  const started = performance.now();
  const r = differential({ count: KIT_COUNT, source: kitScripts });
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`differential (reference generator): ${r.scripts} scripts, ${r.states} states, ${r.disagreeing} disagreements, ${secs} s`);
  if (r.disagreeing > 0) {
    const { seed, script } = r.disagreements[0];
    const short = shrink({ config: script.config, inputs: script.inputs });
    assert.fail(`${r.disagreeing} of ${r.scripts} scripts disagree; seed ${seed}, shrunk:\n${explain(short)}`);
  }
});

test('a disagreement is shrunk to a short script (shown with a planted bug)', { skip: sim.missing }, () => {
  const r = differential({ count: 2000, mutant: 'ResumeInJoinOrder', stopAfter: 1, keep: 1 });
  assert.ok(r.disagreements.length === 1, 'the planted bug disagrees somewhere');
  const { script } = r.disagreements[0];
  const short = shrink(script, 'ResumeInJoinOrder');
  assert.ok(short.inputs.length < script.inputs.length && short.inputs.length <= 8, `${script.inputs.length} -> ${short.inputs.length} inputs`);
  const text = explain(short, 'ResumeInJoinOrder');
  assert.match(text, /first difference at state \d+/);
  console.log(`shrunk ${script.inputs.length} inputs to ${short.inputs.length}:\n${text}`);
});

if (sim.missing) console.log(`differential: skipped, ${sim.missing}`);

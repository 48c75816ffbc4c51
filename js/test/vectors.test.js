// Every vector of the reference core, replayed on the JS core state by state.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { makeConfig } from '../src/config.js';
import { decode } from '../src/itf.js';
import { configFromItf } from './support/trace.js';
import { hasConfigVector, loadConfigVector, loadVectors, replay } from './support/vectors.js';

const vectors = loadVectors();

test(`the JS core passes every vector (${vectors.length})`, () => {
  assert.ok(vectors.length >= 20, 'vectors found');
  let states = 0;
  for (const v of vectors) {
    const r = replay(v);
    assert.equal(r.index, -1, `${v.name} state ${r.index}: want ${JSON.stringify(r.want)}\n got ${JSON.stringify(r.got)}`);
    states += v.raw.states.length;
  }
  console.log(`vectors: ${vectors.length} passed, ${states} states`);
});

test('the JS core refuses exactly the configurations the reference core refuses', { skip: !hasConfigVector() }, () => {
  const cases = loadConfigVector();
  for (const c of cases) {
    let kind = null;
    try {
      makeConfig(configFromItf(decode(c.config)));
    } catch (e) {
      kind = e.kind;
    }
    assert.equal(kind, c.error, c.about);
  }
  console.log(`config vector: ${cases.length} cases`);
});

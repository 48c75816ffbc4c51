// Random worlds for the wx client, each run judged. TOKENFLIGHT_WX_RUNS
// sets the count.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { assertJudged } from './support/judge.js';
import { randomRun } from './support/random-world.js';

const RUNS = Number(process.env.TOKENFLIGHT_WX_RUNS ?? 30);

test(`${RUNS} random worlds: every request ends, every run passes the judge`, async () => {
  let requests = 0;
  const kinds = {};
  for (let seed = 0; seed < RUNS; seed++) {
    const { client, settled, outcomes } = await randomRun(seed);
    assert.ok(settled, `seed ${seed}: a request never ended`);
    for (const k of settled) kinds[k] = (kinds[k] ?? 0) + 1;
    requests += outcomes;
    assertJudged(client.history());
  }
  console.log(`random worlds: ${RUNS} runs, ${requests} requests, outcomes ${JSON.stringify(kinds)}`);
});

// The jitter stream against SplitMix64's published outputs, and the
// draws' edges.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Jitter } from '../src/jitter.js';
import { U64_MAX } from '../src/time.js';

test('the stream starts at the seed: SplitMix64(0) gives its published first outputs', () => {
  const j = new Jitter(0n);
  assert.equal(j.nextU64(), 0xe220a8397b1dcdafn);
  assert.equal(j.nextU64(), 0x6e789e6aa1b965f4n);
  assert.equal(j.nextU64(), 0x06c45d188009454fn);
});

test('up_to: no draw for a zero span, multiply-shift over max + 1, saturating at u64', () => {
  const j = new Jitter(7n);
  assert.equal(j.upTo(0n), 0n);
  assert.equal(j.state, 7n, 'a zero span draws nothing');
  const k = new Jitter(7n);
  const r = k.nextU64();
  assert.equal(new Jitter(7n).upTo(999n), (r * 1000n) >> 64n);
  assert.ok(new Jitter(1n).upTo(U64_MAX) <= U64_MAX);
});

test('equal jitter: half of d plus up to the other half', () => {
  const j = new Jitter(3n);
  for (let i = 0; i < 1000; i++) {
    const d = BigInt(i * 7919 + 1);
    const e = j.equal(d);
    assert.ok(e >= d / 2n && e <= d, `${e} for ${d}`);
  }
});

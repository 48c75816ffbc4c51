// The reference core's vectors: loading them and replaying one on the JS core.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

import { decode, sameJson } from '../../src/itf.js';
import { configFromItf, runScript } from './trace.js';

export const VECTORS = fileURLToPath(new URL('../../../sim/vectors/', import.meta.url));

/** Every vector: {name, raw (ITF JSON), config, steps}. */
export function loadVectors() {
  return readdirSync(VECTORS).filter((f) => f.endsWith('.itf.json')).sort().map((name) => {
    const raw = JSON.parse(readFileSync(join(VECTORS, name), 'utf8'));
    const states = raw.states;
    const init = decode(states[0].input);
    return {
      name,
      raw,
      init: states[0].input,
      config: configFromItf(init.value.config),
      steps: states.slice(1).map((s) => ({ now: decode(s.now), input: decode(s.input) })),
      rawInputs: states.slice(1).map((s) => s.input),
    };
  });
}

/** Replays one vector; the index of the first state that differs, or -1. */
export function replay(v, mutant = null) {
  let got;
  try {
    got = runScript(v.config, v.steps, { mutant, init: v.init, rawInputs: v.rawInputs });
  } catch (e) {
    return { index: 0, error: e };
  }
  const want = v.raw.states;
  if (got.length !== want.length) return { index: Math.min(got.length, want.length) };
  const index = want.findIndex((s, i) => !sameJson(s, got[i]));
  return { index, got: got[index], want: want[index] };
}


const CONFIG_VECTOR = join(VECTORS, 'config-errors.json');

export function hasConfigVector() {
  return existsSync(CONFIG_VECTOR);
}

/** The config vector's cases: {about, config (ITF), error: kind or null}. */
export function loadConfigVector() {
  return JSON.parse(readFileSync(CONFIG_VECTOR, 'utf8')).cases;
}

// The differential test: random scripts through the JS core and the
// reference core's oracle, compared state by state; a disagreement is shrunk
// to a short script.

import { defaultConfig, makeConfig } from '../../src/config.js';
import { sameJson, stringify } from '../../src/itf.js';
import { decode } from '../../src/itf.js';
import { oracle, runSim } from './sim.js';
import { randomScript } from './scripts.js';
import { configFromItf, configToItf, runScript } from './trace.js';

export function line(s) {
  if (s.line) return s.line;
  // Every field, defaults filled in, valid or not: the oracle must refuse
  // what the JS core refuses.
  return JSON.stringify({ config: configToItf({ ...defaultConfig(), ...s.config }), inputs: s.inputs });
}

/** The JS core's trace of a script: states, or {error} for a config it refuses. */
export function jsTrace(s, mutant = null) {
  let config;
  try {
    config = makeConfig(s.config);
  } catch (e) {
    return { error: 'invalid_config', kind: e.kind };
  }
  const steps = s.inputs.map((x) => ({ now: decode(x.now), input: decode(x.input) }));
  return { states: runScript(config, steps, { mutant, rawInputs: s.inputs.map((x) => x.input) }) };
}

/** The index of the first state where the traces differ, or -1 (state 0: its input aside). */
export function firstDifference(mine, theirs) {
  if (mine.error !== undefined || theirs.error !== undefined) {
    return mine.error === theirs.error && mine.kind === theirs.kind ? -1 : 0;
  }
  const a = mine.states;
  const b = theirs.states;
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if (!a[i] || !b[i]) return i;
    if (i === 0) {
      if (!sameJson({ ...a[0], input: null }, { ...b[0], input: null })) return 0;
    } else if (!sameJson(a[i], b[i])) return i;
  }
  return -1;
}

/**
 * Removes inputs while the disagreement stays (every candidate of a round
 * goes to the oracle in one batch). Returns the shortest script found.
 */
export function shrink(script, mutant = null, rounds = 60) {
  const disagrees = (cands) => {
    const theirs = oracle(cands.map(line));
    return cands.map((c, i) => firstDifference(jsTrace(c, mutant), theirs[i]) >= 0);
  };
  let best = script;
  for (let round = 0; round < rounds; round++) {
    const n = best.inputs.length;
    const cands = [];
    for (let size = Math.max(1, n >> 1); size >= 1; size >>= 1) {
      for (let at = 0; at + size <= n; at += size) {
        cands.push({ config: best.config, inputs: [...best.inputs.slice(0, at), ...best.inputs.slice(at + size)] });
      }
    }
    if (cands.length === 0) break;
    const hit = disagrees(cands).findIndex(Boolean);
    if (hit < 0) break;
    best = cands[hit];
  }
  return best;
}

/** A readable dump of a script and both traces from the first difference. */
export function explain(script, mutant = null) {
  const mine = jsTrace(script, mutant);
  const [theirs] = oracle([line(script)]);
  const i = firstDifference(mine, theirs);
  return [
    `script (${script.inputs.length} inputs): ${line(script)}`,
    `first difference at state ${i}:`,
    `  oracle: ${JSON.stringify(theirs.states?.[i] ?? theirs)}`,
    `  js:     ${JSON.stringify(mine.states?.[i] ?? mine)}`,
  ].join('\n');
}

/**
 * Runs `count` scripts from `seed0` through both cores, in oracle batches.
 * Returns {scripts, states, disagreeing, disagreements: the first `keep`
 * as [{seed, script}]}; stops once `stopAfter` scripts disagreed.
 */
export function differential({ count, seed0 = 0, batch = 4000, mutant = null, keep = 3, stopAfter = Infinity, source = randomScript }) {
  let states = 0;
  let disagreeing = 0;
  let run = 0;
  const disagreements = [];
  for (let start = 0; start < count; start += batch) {
    const seeds = [];
    for (let s = start; s < Math.min(count, start + batch); s++) seeds.push(seed0 + s);
    const batchScripts = source === kitScripts ? kitScripts(seeds.length, seeds[0]) : seeds.map((s) => source(s));
    const theirs = oracle(batchScripts.map(line));
    batchScripts.forEach((sc, i) => {
      const mine = jsTrace(sc, mutant);
      states += mine.states?.length ?? 0;
      run += 1;
      if (firstDifference(mine, theirs[i]) >= 0) {
        disagreeing += 1;
        if (disagreements.length < keep) disagreements.push({ seed: seeds[i], script: sc });
      }
    });
    if (disagreeing >= stopAfter) break;
  }
  return { scripts: run, states, disagreeing, disagreements };
}

export { stringify };

/** `count` random scripts with the oracle's traces, to compare many cores against. */
export function corpus(count, seed0 = 1_000_000) {
  const scripts = [];
  for (let s = 0; s < count; s++) scripts.push(randomScript(seed0 + s));
  const traces = [];
  for (let i = 0; i < count; i += 4000) traces.push(...oracle(scripts.slice(i, i + 4000).map(line)));
  return { scripts, traces };
}

/** The index of the first script of the corpus the core with `mutant` disagrees on, or -1. */
export function firstDisagreement({ scripts, traces }, mutant) {
  return scripts.findIndex((s, i) => firstDifference(jsTrace(s, mutant), traces[i]) >= 0);
}

/** `count` scripts from the reference generator (`sim scripts`), script i with seed `seed + i`. */
export function kitScripts(count, seed) {
  const r = runSim('scripts', '', ['--seed', String(seed), '--count', String(count)]);
  if (r.status !== 0) throw new Error(`sim scripts exited ${r.status}: ${r.stderr.slice(-400)}`);
  return r.stdout.split('\n').filter((l) => l.length > 0).map((l) => {
    const raw = JSON.parse(l);
    return { line: l, config: configFromItf(decode(raw.config)), inputs: raw.inputs };
  });
}

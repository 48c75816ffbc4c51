// The Informal Trace Format encoding the reference core's vectors and
// oracle use: integers as {"#bigint": "N"}, sum types as {tag, value},
// unit as {"#tup": []}.

import { errorTag } from './errors.js';

export const unit = () => ({ '#tup': [] });
export const int = (n) => ({ '#bigint': BigInt(n).toString() });
export const variant = (tag, value = unit()) => ({ tag, value });
export const option = (v) => (v === null || v === undefined ? variant('None') : variant('Some', int(v)));

/** JSON.parse with ITF integers as BigInt. */
export function parse(text) {
  return decode(JSON.parse(text));
}

/** Turns {"#bigint"} into BigInt everywhere (other shapes unchanged). */
export function decode(v) {
  if (Array.isArray(v)) return v.map(decode);
  if (v && typeof v === 'object') {
    if (typeof v['#bigint'] === 'string') return BigInt(v['#bigint']);
    const o = {};
    for (const [k, x] of Object.entries(v)) o[k] = decode(x);
    return o;
  }
  return v;
}

/** JSON.stringify with BigInt as {"#bigint"}. */
export function stringify(v) {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? int(x) : x));
}

export function getOption(v) {
  return v.tag === 'Some' ? v.value : null;
}

export function errorValue(e) {
  if (e.kind === 'AuthRejected') return variant('AuthRejected', { sends: int(e.sends) });
  return variant(errorTag(e));
}

export function leaseFields(l) {
  return { token: l.token, generation: int(l.generation), send: int(l.send) };
}

/** The answer of acquire/reject, as ITF. */
export function nextValue(n) {
  if (n.type === 'Send') return variant('Send', leaseFields(n.lease));
  if (n.type === 'Wait') return variant('Wait');
  return variant('Fail', { error: errorValue(n.error) });
}

export function actionValue(a) {
  if (a.type === 'StartRefresh') return variant('StartRefresh', { attempt: int(a.attempt) });
  if (a.type === 'AbandonRefresh') return variant('AbandonRefresh', { attempt: int(a.attempt) });
  if (a.type === 'Resume') return variant('Resume', { ...leaseFields(a.lease), id: int(a.id) });
  return variant('Fail', { id: int(a.id), error: errorValue(a.error) });
}

/** Deep equality of two JSON values, ignoring "#meta" keys. */
export function sameJson(a, b) {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  const ka = Object.keys(a).filter((k) => k !== '#meta');
  const kb = Object.keys(b).filter((k) => k !== '#meta');
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && sameJson(a[k], b[k]));
}

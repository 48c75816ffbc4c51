// A front-end's run written down in the judge's vocabulary: one JSON object
// per line, {"at": ns, "type": Event, ...fields}, after a Limits line taken
// from the core's configuration.

import { maxSends } from './config.js';
import { maxBig } from './time.js';

function field(v) {
  if (typeof v === 'bigint') return v.toString();
  if (v === null || v === undefined) return 'null';
  return JSON.stringify(v);
}

/** Serialises an event with BigInts as exact JSON numbers. */
export function eventLine(obj) {
  return `{${Object.entries(obj).map(([k, v]) => `${JSON.stringify(k)}:${field(v)}`).join(',')}}`;
}

export class History {
  constructor(config) {
    this.config = config;
    this.events = [];
  }

  push(at, event) {
    this.events.push({ at, ...event });
  }

  /** The Limits line for the judge. */
  limits() {
    const c = this.config;
    const limits = {
      type: 'Limits',
      max_waiters: c.maxWaiters,
      max_sends: maxSends(c),
      max_refresh_attempts: c.maxRefreshAttempts,
      proactive_window_ns: maxBig(c.expirySkew + c.skewJitter, c.safetyMargin ?? 0n),
    };
    if (c.safetyMargin !== undefined) limits.safety_margin_ns = c.safetyMargin;
    return limits;
  }

  /** The whole history as JSON lines (Limits first unless `limits` is false). */
  text({ limits = true } = {}) {
    const lines = this.events.map(eventLine);
    if (limits) lines.unshift(eventLine(this.limits()));
    return lines.join('\n') + '\n';
  }
}

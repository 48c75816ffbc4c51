// Cancellation where AbortController may not exist (the mini-program
// runtime): an AbortSignal-like pair. Any real AbortSignal works too.

import { Cancelled } from './errors.js';

export class Canceller {
  constructor() {
    const listeners = new Set();
    this.signal = {
      aborted: false,
      reason: undefined,
      addEventListener: (_type, fn) => listeners.add(fn),
      removeEventListener: (_type, fn) => listeners.delete(fn),
    };
    this.listeners = listeners;
  }

  abort(reason = new Cancelled('cancelled')) {
    if (this.signal.aborted) return;
    this.signal.aborted = true;
    this.signal.reason = reason;
    for (const fn of [...this.listeners]) fn();
    this.listeners.clear();
  }
}

import { setTimeout as sleep } from 'node:timers/promises';

// Waiting for something outside vms to happen (a guest powering off, letting go of a device, a killed process's
// tools ending): asked again every interval until it has happened or the time is up. One loop for all of them, so a
// Ctrl-C stops every wait at once and none sleeps past its deadline.

export interface PollOptions {
  /** How long to keep asking; the last question is asked at the deadline. */
  timeoutMs: number;
  /** Between two questions (default 500 ms). */
  intervalMs?: number;
  /** Stops the wait (an AbortError) between questions: the context's signal. */
  signal?: AbortSignal;
  /** The error for "the time is up", built by the caller (it knows what was waited for); without it, false. */
  timeoutError?: () => Error;
}

/** Asks `done` until it says yes (true) or the time is up (false, or the caller's timeout error thrown). */
export async function pollUntil(done: () => Promise<boolean>, opts: PollOptions): Promise<boolean> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 500;
  for (;;) {
    if (await done()) return true;
    const left = deadline - Date.now();
    if (left <= 0) {
      if (opts.timeoutError) throw opts.timeoutError();
      return false;
    }
    await sleep(Math.min(interval, left), undefined, { signal: opts.signal });
  }
}

/** How long to wait between reconnects: exponential, capped, with jitter. */
export interface BackoffPolicy {
  /** The delay after the first failure. */
  initialMs: number;
  /** The most any one delay may be. */
  maxMs: number;
  /** How much each further failure multiplies the delay by. */
  multiplier: number;
  /** 0..1: how much of each delay is random (0.5: between half and all of it). */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 500, maxMs: 10_000, multiplier: 2, jitter: 0.5 };

/**
 * The delay before the next attempt after `failures` consecutive failures
 * (0 for the first). The jitter spreads out the browsers that all lost the
 * same gateway at once, so they do not come back in one wave.
 */
export function backoffDelay(failures: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.initialMs * policy.multiplier ** failures);
  return Math.round(ceiling * (1 - policy.jitter * random()));
}

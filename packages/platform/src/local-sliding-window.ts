// The rate limiter's in-process sliding log (packages/platform/src/rate-limit.ts):
// the "local" fail mode decides from it when Redis cannot answer.

/** A window's state as Redis or the local log sees it, in that clock's ms. */
export interface WindowView {
  count: number;
  oldest: number;
  newest: number;
  now: number;
}

/**
 * The same sliding log in process memory, for the "local" fail mode. It holds
 * every request this replica let through under a "local" rule, whether Redis
 * or the fallback decided, so the fallback never starts from an empty window
 * when Redis stalls mid-window. Memory: one timestamp per request allowed in
 * the window, at most localMaxKeys keys.
 */
export class LocalSlidingWindow {
  // Map order is recency order: every access re-inserts, so eviction drops the least recently used.
  private readonly logs = new Map<string, { times: number[]; windowMs: number }>();
  private nextSweep = 0;

  constructor(
    private readonly maxKeys: number,
    private readonly now: () => number,
  ) {}

  view(id: string, windowMs: number): WindowView {
    const now = this.now();
    this.sweep(now);
    const entry = this.logs.get(id);
    if (!entry) return { count: 0, oldest: now, newest: now, now };
    const { times } = entry;
    let live = 0;
    while (live < times.length && times[live]! <= now - windowMs) live++;
    if (live > 0) times.splice(0, live);
    this.logs.delete(id);
    if (times.length > 0) this.logs.set(id, { times, windowMs });
    return { count: times.length, oldest: times[0] ?? now, newest: times[times.length - 1] ?? now, now };
  }

  record(id: string, windowMs: number): void {
    const now = this.now();
    const entry = this.logs.get(id) ?? { times: [], windowMs };
    this.logs.delete(id);
    entry.windowMs = windowMs;
    entry.times.push(now);
    this.logs.set(id, entry);
    while (this.logs.size > this.maxKeys) this.logs.delete(this.logs.keys().next().value!);
  }

  // A full pass at most once a second keeps idle keys from holding memory.
  private sweep(now: number): void {
    if (now < this.nextSweep) return;
    this.nextSweep = now + 1_000;
    for (const [id, { times, windowMs }] of this.logs) {
      if (times[times.length - 1]! <= now - windowMs) this.logs.delete(id);
    }
  }
}

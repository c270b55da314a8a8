import type { EntryMove } from "@scoreboard/gen/scoreboard/v1/events_pb";

/**
 * The moves of one board gathered between two standing reads, asked "could
 * this standing have changed?". An entry moving from score a to score b
 * changes the rank of exactly the entries between a and b (it passed them),
 * and its own: a standing showing scores from `low` to `high` (the user's
 * and its neighbours') is touched when a move's span overlaps that range, or
 * when the move is the user's own. Spans are inclusive: on an equal score
 * the tie rule decides, so both sides count as passed.
 */
export class MovedScores {
  private spans: [number, number][] = [];
  private readonly movers = new Set<string>();
  /** Moves that do not say where they came from: resolved against what the caller knows. */
  private unplaced: { userId: string; to: number }[] = [];
  private merged = true;

  get isEmpty(): boolean {
    return this.movers.size === 0;
  }

  add(moves: readonly EntryMove[]): void {
    for (const move of moves) {
      const to = Number(move.toScore);
      this.movers.add(move.userId);
      if (move.fromScore === undefined) this.unplaced.push({ userId: move.userId, to });
      else this.addSpan(Number(move.fromScore), to);
    }
  }

  /**
   * Places the moves without a from-score, with the mover's score as last
   * seen (`scoreOf`, e.g. from the standings the caller holds); a move from
   * nobody knows where may have passed anyone: everything is touched.
   */
  place(scoreOf: (userId: string) => number | undefined): void {
    for (const { userId, to } of this.unplaced) {
      const from = scoreOf(userId);
      this.addSpan(from ?? Number.NEGATIVE_INFINITY, from === undefined ? Number.POSITIVE_INFINITY : to);
    }
    this.unplaced = [];
  }

  get hasUnplaced(): boolean {
    return this.unplaced.length > 0;
  }

  /** Whether a standing of `userId` showing scores low..high may have changed (place() first). */
  touches(userId: string, low: number, high: number): boolean {
    if (this.movers.has(userId)) return true;
    if (low > high) return false; // the user has no entry: only their own move changes that
    this.merge();
    // The first span ending at or after `low`: it overlaps when it starts at or before `high`.
    let lo = 0;
    let hi = this.spans.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.spans[mid]![1] < low) lo = mid + 1;
      else hi = mid;
    }
    return lo < this.spans.length && this.spans[lo]![0] <= high;
  }

  clear(): void {
    this.spans = [];
    this.movers.clear();
    this.unplaced = [];
    this.merged = true;
  }

  private addSpan(a: number, b: number): void {
    this.spans.push(a <= b ? [a, b] : [b, a]);
    this.merged = false;
  }

  /** Sorted, overlapping spans joined: a standing is then checked with one binary search. */
  private merge(): void {
    if (this.merged) return;
    this.spans.sort((x, y) => x[0] - y[0]);
    const joined: [number, number][] = [];
    for (const span of this.spans) {
      const last = joined[joined.length - 1];
      if (last && span[0] <= last[1]) last[1] = Math.max(last[1], span[1]);
      else joined.push([span[0], span[1]]);
    }
    this.spans = joined;
    this.merged = true;
  }
}

import { setTimeout as delay } from "node:timers/promises";
import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { BoardMoved } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { LeaderboardEntry, Standing, StreamPosition } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { PushService } from "@scoreboard/gen/scoreboard/v1/push_pb";
import type { RankingService } from "@scoreboard/gen/scoreboard/v1/ranking_pb";
import type { Logger } from "@scoreboard/platform/logger";
import { afterResume, compareEpochs, positionOf } from "@scoreboard/platform/stream-position";
import { outsideAnyTrace } from "@scoreboard/platform/tracing";
import { MovedScores } from "./moved-scores.js";

/** A standing as a stream sends it: the state, which state it is, and when. */
export interface StandingState {
  standing: Standing;
  position: StreamPosition;
  asOf: Timestamp | undefined;
}

type Listener = (state: StandingState) => void;

export interface StandingWatchersOptions {
  /** At most one read, so at most one message per watcher, per board and interval: changes in between are merged. */
  intervalMs?: number;
  /** Every watcher is re-read this often anyway: a lost move announcement delays a standing at most this long. */
  sweepMs?: number;
  /** A standing stays tracked this long after its last watcher left, so a reconnect resumes against the same history. */
  lingerMs?: number;
  /** Users per GetStandings call. */
  batchSize?: number;
  /** Counts the standings re-read (sb_standing_reads_total). */
  reads?: { inc(count: number): void };
}

/** How often the sweep takes its next slice. */
const SWEEP_TICK_MS = 1_000;

const DEFAULTS: Required<Omit<StandingWatchersOptions, "reads">> = { intervalMs: 50, sweepMs: 30_000, lingerMs: 30_000, batchSize: 500 };
type Options = Required<Omit<StandingWatchersOptions, "reads">> & Pick<StandingWatchersOptions, "reads">;

/**
 * The standings the gateway's clients watch ("you are #4,812"), per board:
 * one tracked standing per (user, around) shared by all of its streams.
 *
 * Cost follows what changes, not how many watch: ranking announces which
 * entries moved and between which scores (BoardMoved, relayed by push); only
 * a standing whose scores lie within a move can have changed (every grant
 * shifts the ranks of exactly the entries it passes), so only those are
 * re-read from ranking, many per GetStandings call, at most once per
 * interval per board. Watchers are told only when their standing really
 * changed. A new epoch (rebuild, new season), an announcement too big to
 * list or a reconnect to push re-read every standing; a sweep re-reads them
 * all once per sweepMs anyway, a slice a second, behind real changes.
 */
export class StandingWatchers {
  private readonly boards = new Map<string, BoardStandings>();
  private readonly options: Options;

  constructor(
    private readonly ranking: Pick<Client<typeof RankingService>, "getStandings">,
    private readonly push: Pick<Client<typeof PushService>, "watchBoardMoves">,
    private readonly logger: Logger,
    options: StandingWatchersOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  /**
   * Calls `listener` with the user's standing on `board` (with `around`
   * neighbours) at once when known, and whenever it changes. With `resume`,
   * a state is passed on only when newer than it (see isNewerThanResume).
   * Returns unsubscribe.
   */
  subscribe(board: string, userId: string, around: number, listener: Listener, resume?: StreamPosition): () => void {
    let standings = this.boards.get(board);
    if (!standings) {
      standings = new BoardStandings(board, this.ranking, this.push, this.logger, this.options, () => this.boards.delete(board));
      this.boards.set(board, standings);
    }
    return standings.add(userId, around, resume ? afterResume(resume, listener) : listener);
  }

  /** Standings tracked (watched or lingering) across boards. */
  get trackedCount(): number {
    let count = 0;
    for (const board of this.boards.values()) count += board.size;
    return count;
  }

  close(): void {
    for (const board of this.boards.values()) board.close();
    this.boards.clear();
  }
}

interface Tracked {
  userId: string;
  around: number;
  key: string;
  state: StandingState | undefined;
  /** The lowest and highest score the state shows: a move outside them changes nothing it shows. */
  low: number;
  high: number;
  dirty: boolean;
  listeners: Set<Listener>;
  lingering: NodeJS.Timeout | undefined;
}

class BoardStandings {
  private readonly tracked = new Map<string, Tracked>();
  /** Trackers to re-read, in the order they became dirty. */
  private readonly dirty = new Set<Tracked>();
  /** Trackers the sweep re-reads when a read has room after the dirty ones. */
  private readonly sweeping = new Set<Tracked>();
  private sweepCursor: Iterator<Tracked> | undefined;
  private readonly moved = new MovedScores();
  private readonly abort = new AbortController();
  private epoch = "";
  private reading = false;
  private lastReadAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly board: string,
    private readonly ranking: Pick<Client<typeof RankingService>, "getStandings">,
    private readonly push: Pick<Client<typeof PushService>, "watchBoardMoves">,
    private readonly logger: Logger,
    private readonly options: Options,
    private readonly onIdle: () => void,
  ) {
    this.sweep = setInterval(() => this.sweepSlice(), SWEEP_TICK_MS).unref();
    // Shared by every watcher of the board: not part of the trace of the request that opened it.
    void outsideAnyTrace(() => this.followMoves());
  }

  get size(): number {
    return this.tracked.size;
  }

  add(userId: string, around: number, listener: Listener): () => void {
    const key = `${around}\u0000${userId}`;
    let tracked = this.tracked.get(key);
    if (!tracked) {
      tracked = { userId, around, key, state: undefined, low: 0, high: 0, dirty: false, listeners: new Set(), lingering: undefined };
      this.tracked.set(key, tracked);
      this.markDirty(tracked);
    }
    clearTimeout(tracked.lingering);
    tracked.lingering = undefined;
    tracked.listeners.add(listener);
    if (tracked.state) listener(tracked.state);
    const entry = tracked;
    return () => {
      if (!entry.listeners.delete(listener) || entry.listeners.size > 0) return;
      entry.lingering = setTimeout(() => this.forget(entry), this.options.lingerMs).unref();
    };
  }

  close(): void {
    this.abort.abort();
    clearInterval(this.sweep);
    clearTimeout(this.timer);
    for (const tracked of this.tracked.values()) clearTimeout(tracked.lingering);
    this.tracked.clear();
    this.dirty.clear();
    this.sweeping.clear();
  }

  private forget(tracked: Tracked): void {
    this.tracked.delete(tracked.key);
    this.dirty.delete(tracked);
    this.sweeping.delete(tracked);
    if (this.tracked.size === 0) {
      this.close();
      this.onIdle();
    }
  }

  /** Ranking's moves of this board, relayed by push; reconnects with backoff while push is away. */
  private async followMoves(): Promise<void> {
    let failures = 0;
    while (!this.abort.signal.aborted) {
      try {
        for await (const moved of this.push.watchBoardMoves({ board: this.board }, { signal: this.abort.signal })) {
          failures = 0;
          this.onMoved(moved);
        }
      } catch (err) {
        if (this.abort.signal.aborted) return;
        const error = ConnectError.from(err);
        if (error.code !== Code.Unavailable && error.code !== Code.Canceled) {
          this.logger.warn({ err: error.message, board: this.board }, "board moves stream broke, reconnecting");
        }
      }
      // Moves may have been missed meanwhile: every standing is read again.
      this.markAll();
      failures += 1;
      await delay(Math.min(100 * 2 ** failures, 5_000), undefined, { signal: this.abort.signal }).catch(() => undefined);
    }
  }

  private onMoved(moved: BoardMoved): void {
    if (moved.epoch && moved.epoch !== this.epoch) {
      const newer = this.epoch === "" || compareEpochs(moved.epoch, this.epoch) > 0;
      if (!newer) return; // an announcement from before a rebuild or a season change that came late
      const first = this.epoch === "";
      this.epoch = moved.epoch;
      // A new epoch: every standing may differ. (The first message only tells the epoch.)
      if (!first) {
        this.markAll();
        return;
      }
    }
    if (moved.everything) {
      this.markAll();
      return;
    }
    if (moved.moves.length === 0) return;
    this.moved.add(moved.moves);
    this.schedule();
  }

  private markDirty(tracked: Tracked): void {
    if (tracked.dirty) return;
    tracked.dirty = true;
    this.dirty.add(tracked);
    this.sweeping.delete(tracked);
    this.schedule();
  }

  /**
   * The sweep, a slice a second: every standing is re-read once per sweepMs,
   * spread out, and behind the standings moves made dirty. (All at once, ten
   * thousand standings took twenty reads, and real changes waited behind them.)
   */
  private sweepSlice(): void {
    let count = Math.ceil((this.tracked.size * SWEEP_TICK_MS) / this.options.sweepMs);
    for (let wrapped = false; count > 0; ) {
      this.sweepCursor ??= this.tracked.values();
      const next = this.sweepCursor.next();
      if (next.done) {
        this.sweepCursor = undefined;
        if (wrapped) break; // fewer standings than a slice
        wrapped = true;
        continue;
      }
      if (!next.value.dirty) this.sweeping.add(next.value);
      count -= 1;
    }
    if (this.sweeping.size > 0) this.schedule();
  }

  private markAll(): void {
    this.moved.clear();
    for (const tracked of this.tracked.values()) this.markDirty(tracked);
  }

  /** Applies the moves gathered so far: marks the standings they may have changed. */
  private takeMoves(): void {
    if (this.moved.isEmpty) return;
    if (this.moved.hasUnplaced) this.moved.place(this.knownScores());
    for (const tracked of this.tracked.values()) {
      if (tracked.dirty || !tracked.state) continue;
      if (this.moved.touches(tracked.userId, tracked.low, tracked.high)) this.markDirty(tracked);
    }
    this.moved.clear();
  }

  /** Users' scores as the tracked standings last showed them (entries and neighbours). */
  private knownScores(): (userId: string) => number | undefined {
    const scores = new Map<string, number>();
    for (const tracked of this.tracked.values()) {
      const standing = tracked.state?.standing;
      if (!standing) continue;
      for (const e of [standing.entry, ...standing.neighbourhood]) if (e) scores.set(e.userId, Number(e.score));
    }
    return (userId) => scores.get(userId);
  }

  /** One read at a time per board, no sooner than an interval after the last one. */
  private schedule(): void {
    if (this.reading || this.timer || this.abort.signal.aborted) return;
    const wait = Math.max(0, this.lastReadAt + this.options.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.read();
    }, wait);
  }

  private async read(): Promise<void> {
    this.takeMoves();
    if (this.dirty.size === 0 && this.sweeping.size === 0) return;
    this.reading = true;
    this.lastReadAt = Date.now();
    // A call per `around` (GetStandings takes one), each at most batchSize users; the rest waits a turn.
    const batches = new Map<number, Tracked[]>();
    let taken = 0;
    // Standings moves made dirty first, then the sweep's.
    for (const tracked of [...this.dirty, ...this.sweeping]) {
      if (taken >= this.options.batchSize * 4) break;
      let batch = batches.get(tracked.around);
      if (!batch) {
        batch = [];
        batches.set(tracked.around, batch);
      }
      if (batch.length >= this.options.batchSize) continue;
      batch.push(tracked);
      taken += 1;
    }
    for (const batch of batches.values()) {
      for (const tracked of batch) {
        // Cleared before the read: a move during it marks the standing again.
        tracked.dirty = false;
        this.dirty.delete(tracked);
        this.sweeping.delete(tracked);
      }
    }
    try {
      await Promise.all([...batches.values()].map((batch) => this.readBatch(batch)));
    } finally {
      this.reading = false;
      if (this.dirty.size > 0 || this.sweeping.size > 0 || !this.moved.isEmpty) this.schedule();
    }
  }

  private async readBatch(batch: Tracked[]): Promise<void> {
    this.options.reads?.inc(batch.length);
    try {
      const answer = await this.ranking.getStandings(
        { board: this.board, userIds: batch.map((t) => t.userId), around: batch[0]!.around },
        { signal: this.abort.signal, timeoutMs: 5_000 },
      );
      if (answer.epoch && (this.epoch === "" || compareEpochs(answer.epoch, this.epoch) > 0)) this.epoch = answer.epoch;
      const position = positionOf(answer.epoch, answer.asOf);
      answer.standings.forEach((found, i) => {
        const tracked = batch[i];
        if (tracked && found.userId === tracked.userId && found.standing) this.update(tracked, found.standing, position, answer.asOf);
      });
    } catch (err) {
      if (this.abort.signal.aborted) return;
      // Read again at the next turn (ranking away: with backoff from the interval).
      this.logger.warn({ err: ConnectError.from(err).message, board: this.board, users: batch.length }, "reading standings failed");
      for (const tracked of batch) if (this.tracked.get(tracked.key) === tracked) this.markDirty(tracked);
      this.lastReadAt = Date.now() + 1_000;
    }
  }

  private update(tracked: Tracked, standing: Standing, position: StreamPosition, asOf: Timestamp | undefined): void {
    // A re-read that found the same standing in the same epoch changes nothing: its watchers keep their position.
    const shown = tracked.state;
    if (shown && shown.position.epoch === position.epoch && sameStanding(shown.standing, standing)) return;
    tracked.state = { standing, position, asOf };
    const scores = [standing.entry, ...standing.neighbourhood].filter((e): e is LeaderboardEntry => e !== undefined).map((e) => Number(e.score));
    // A user without an entry: any move may be the one that puts them on the board (their own is always checked).
    tracked.low = scores.length > 0 ? Math.min(...scores) : Number.POSITIVE_INFINITY;
    tracked.high = scores.length > 0 ? Math.max(...scores) : Number.NEGATIVE_INFINITY;
    for (const listener of tracked.listeners) listener(tracked.state);
  }
}

function sameStanding(a: Standing, b: Standing): boolean {
  if (!sameEntry(a.entry, b.entry) || a.neighbourhood.length !== b.neighbourhood.length) return false;
  return a.neighbourhood.every((e, i) => sameEntry(e, b.neighbourhood[i]));
}

function sameEntry(a: LeaderboardEntry | undefined, b: LeaderboardEntry | undefined): boolean {
  if (!a || !b) return a === b;
  return a.rank === b.rank && a.userId === b.userId && a.score === b.score && a.username === b.username;
}

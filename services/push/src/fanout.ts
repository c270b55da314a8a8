import { fromBinary } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { NatsConnection, Subscription } from "nats";
import { BoardChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { LeaderboardEntry } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import type { Logger } from "@scoreboard/platform/logger";
import type { SecondsObserver } from "@scoreboard/platform/metrics";
import { Subjects } from "@scoreboard/platform/nats";
import { compareEpochs } from "@scoreboard/platform/stream-position";
import { SpanKind, contextFromNats, startSpan, unsampled } from "@scoreboard/platform/tracing";

export interface BoardSnapshot {
  /** The board's top entries (up to 100), highest first. */
  top: LeaderboardEntry[];
  asOf: Timestamp | undefined;
  /** The board's epoch (StreamPosition.epoch) the top was read in. */
  epoch: string;
}

/** Where a board's current state comes from when we have none (ranking's GetLeaderboard). */
export type SnapshotSource = (board: string) => Promise<BoardSnapshot>;

type Listener = (snapshot: BoardSnapshot) => void;

interface BoardState {
  snapshot: BoardSnapshot | undefined;
  loading: Promise<BoardSnapshot> | undefined;
  listeners: Set<Listener>;
  /** When listeners were last told, and the pending trailing notification. */
  notifiedAt: number;
  trailing: NodeJS.Timeout | undefined;
  /** The snapshot came from ranking's announcement (its asOf is when the board changed), not a refresh. */
  announced: boolean;
  /**
   * The latest asOf the held top was seen at. A refresh finding the same top
   * moves this, not the snapshot: a state keeps the asOf (the position) it
   * was first shown with, so a client resuming from it is still current.
   */
  seenAtMs: number;
}

/**
 * Keeps the latest top 100 of every watched board in memory and tells each
 * watcher when its board changed. Fed by ranking's BoardChanged messages on
 * core NATS (every replica subscribes, so every replica sees every change);
 * boards are re-read from ranking periodically and after a NATS reconnect, so
 * a lost message only delays an update.
 */
export class TopNFanout {
  private readonly boards = new Map<string, BoardState>();
  private subscription: Subscription | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly source: SnapshotSource,
    private readonly logger: Logger,
    private readonly refreshIntervalMs = 5_000,
    /** At most one notification per board per this many ms; changes in between are merged. */
    private readonly coalesceMs = 100,
    /** Told, per notification of an announced change, how long after the change it reached the streams. */
    private readonly fanoutLatency?: SecondsObserver,
  ) {}

  /**
   * Subscribes to ranking's announcements. Until then (push waits for NATS at
   * start) watchers are served from ranking's reads and the periodic refresh.
   */
  start(nats: NatsConnection): void {
    this.subscription = nats.subscribe(Subjects.allBoardsChanged, {
      callback: (err, msg) => {
        if (err) return;
        // A child of ranking's announcement, so a score's trace ends at the streams it reached.
        const span = startSpan("fan out board change", SpanKind.CONSUMER, contextFromNats(msg.headers), { "messaging.destination.name": msg.subject });
        try {
          const changed = fromBinary(BoardChangedSchema, msg.data);
          span?.setAttributes({ "scoreboard.board": changed.board, "scoreboard.watchers": this.boards.get(changed.board)?.listeners.size ?? 0 });
          this.publish(changed.board, { top: changed.top, asOf: changed.asOf, epoch: changed.epoch }, true);
        } catch (error) {
          this.logger.warn({ err: (error as Error).message }, "undecodable board change");
        } finally {
          span?.end();
        }
      },
    });
    this.refreshTimer = setInterval(() => void this.refreshAll(), this.refreshIntervalMs);
    void (async () => {
      for await (const status of nats.status()) {
        if (status.type === "reconnect") void this.refreshAll();
      }
    })();
  }

  stop(): void {
    clearInterval(this.refreshTimer);
    for (const state of this.boards.values()) clearTimeout(state.trailing);
    this.subscription?.unsubscribe();
  }

  /** Adds a watcher; it is called with the current snapshot at once, then on every change. */
  async watch(board: string, listener: Listener): Promise<() => void> {
    const state = this.stateOf(board);
    state.listeners.add(listener);
    const unwatch = () => {
      state.listeners.delete(listener);
      if (state.listeners.size === 0 && !state.loading) {
        clearTimeout(state.trailing);
        this.boards.delete(board);
      }
    };
    try {
      listener(state.snapshot ?? (await this.load(board, state)));
    } catch (err) {
      unwatch();
      throw err;
    }
    return unwatch;
  }

  get watcherCount(): number {
    let count = 0;
    for (const state of this.boards.values()) count += state.listeners.size;
    return count;
  }

  private stateOf(board: string): BoardState {
    let state = this.boards.get(board);
    if (!state) {
      state = { snapshot: undefined, loading: undefined, listeners: new Set(), notifiedAt: 0, trailing: undefined, announced: false, seenAtMs: 0 };
      this.boards.set(board, state);
    }
    return state;
  }

  private load(board: string, state: BoardState): Promise<BoardSnapshot> {
    state.loading ??= this.source(board)
      .then((snapshot) => {
        // A change message may have arrived while we were loading; keep the newer.
        this.take(state, snapshot);
        return state.snapshot ?? snapshot;
      })
      .finally(() => {
        state.loading = undefined;
      });
    return state.loading;
  }

  private publish(board: string, snapshot: BoardSnapshot, announced = false): void {
    const state = this.boards.get(board);
    if (!state) return; // nobody here watches this board
    // A refresh that found nothing new must not use up the coalescing window:
    // the next real change would then wait for it.
    if (this.take(state, snapshot) !== "changed") return;
    state.announced = announced;
    // Leading edge at once, then at most one trailing notification per window
    // carrying whatever is latest by then.
    if (state.trailing) return;
    const wait = state.notifiedAt + this.coalesceMs - Date.now();
    if (wait <= 0) {
      this.notify(state);
      return;
    }
    state.trailing = setTimeout(() => {
      state.trailing = undefined;
      this.notify(state);
    }, wait);
  }

  /**
   * Holds the snapshot when it succeeds the held one (successionOf): a
   * refresh answered after a newer change message must not roll it back. A
   * new epoch is a change even with the same top: clients resynchronise on it.
   */
  private take(state: BoardState, snapshot: BoardSnapshot): "older" | "same" | "changed" {
    const held = state.snapshot;
    const verdict = successionOf(held, state.seenAtMs, snapshot);
    if (verdict === "older") return "older";
    state.seenAtMs = millis(verdict.snapshot.asOf);
    if (held && verdict.kind === "same epoch" && sameTop(held.top, verdict.snapshot.top)) return "same";
    state.snapshot = verdict.snapshot;
    return "changed";
  }

  private notify(state: BoardState): void {
    state.notifiedAt = Date.now();
    const snapshot = state.snapshot;
    if (!snapshot) return;
    for (const listener of state.listeners) listener(snapshot);
    if (state.announced && this.fanoutLatency && state.listeners.size > 0) {
      // Clocks of ranking and push hosts differ a little; never report a negative latency.
      this.fanoutLatency.observe(Math.max(0, Date.now() - millis(snapshot.asOf)) / 1_000);
    }
  }

  private async refreshAll(): Promise<void> {
    for (const [board, state] of this.boards) {
      if (state.listeners.size === 0) continue;
      try {
        // Routine: no trace of its own (see unsampled).
        this.publish(board, await unsampled(() => this.source(board)));
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, board }, "board refresh failed");
      }
    }
  }
}

type Succession = "older" | { kind: "same epoch" | "new epoch"; snapshot: BoardSnapshot };

/**
 * Whether a snapshot may replace the one held. A newer epoch (a rebuild, a
 * new season or period) wins even with an older asOf: the old epoch's states
 * are gone; an older epoch never replaces a newer one; within one epoch the
 * later asOf (than the held top was last seen at) wins. A snapshot without
 * an epoch (a ranking release before epochs) is taken as of the held epoch.
 */
function successionOf(held: BoardSnapshot | undefined, heldSeenAtMs: number, next: BoardSnapshot): Succession {
  if (!held) return { kind: "new epoch", snapshot: next };
  const snapshot = next.epoch === "" ? { ...next, epoch: held.epoch } : next;
  const epochs = compareEpochs(snapshot.epoch, held.epoch);
  if (epochs > 0) return { kind: "new epoch", snapshot };
  if (epochs < 0 || millis(snapshot.asOf) < heldSeenAtMs) return "older";
  return { kind: "same epoch", snapshot };
}

function sameTop(a: LeaderboardEntry[], b: LeaderboardEntry[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.userId !== y.userId || x.score !== y.score || x.rank !== y.rank || x.username !== y.username) return false;
  }
  return true;
}

function millis(ts: Timestamp | undefined): number {
  return ts ? Number(ts.seconds) * 1_000 + ts.nanos / 1e6 : 0;
}

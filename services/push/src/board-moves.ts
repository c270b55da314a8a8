import { create, fromBinary } from "@bufbuild/protobuf";
import type { NatsConnection, Subscription } from "nats";
import { type BoardMoved, BoardMovedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { Logger } from "@scoreboard/platform/logger";
import type { OpenCount } from "@scoreboard/platform/metrics";
import { Subjects } from "@scoreboard/platform/nats";
import { compareEpochs } from "@scoreboard/platform/stream-position";
import type { BoardSnapshot, TopNFanout } from "./fanout.js";

/**
 * The most moves one stream holds for a reader that does not keep up; past
 * this they are replaced by one `everything` message, so a stalled reader
 * costs bounded memory (the reader re-reads the board instead).
 */
export const MAX_PENDING_MOVES = 2_000;

type MovesListener = (moved: BoardMoved) => void;

interface RelayedBoard {
  listeners: Set<MovesListener>;
  /** Ranking's BoardMoved of this board; undefined until push has NATS. */
  subscription: Subscription | undefined;
  /** The board's current epoch, as the fanout's snapshot of it says; undefined until read. */
  epoch: string | undefined;
  /** Settles once the epoch is known; rejects when the board could not be read. */
  ready: Promise<void>;
  unwatchFanout: (() => void) | undefined;
}

/**
 * Relays ranking's BoardMoved announcements (core NATS) to WatchBoardMoves
 * streams: one subscription per watched board, shared by all its streams,
 * taken with the first and dropped with the last. Tells the streams of a
 * board `everything` when the fanout sees its epoch change (a rebuild, a new
 * season or period) and after a NATS reconnect (moves may have been lost).
 */
export class BoardMovesRelay {
  private readonly boards = new Map<string, RelayedBoard>();
  private nats: NatsConnection | undefined;

  constructor(
    /** Where a board's epoch comes from: the relay watches the board there. */
    private readonly fanout: TopNFanout,
    private readonly logger: Logger,
  ) {}

  /** Subscribes for every board watched so far and each one watched later; until then streams get their first message only. */
  start(nats: NatsConnection): void {
    this.nats = nats;
    for (const [board, state] of this.boards) state.subscription ??= this.subscribe(board, state);
    void (async () => {
      for await (const status of nats.status()) {
        if (status.type === "reconnect") this.announceEverything();
      }
    })();
  }

  stop(): void {
    for (const state of this.boards.values()) {
      state.subscription?.unsubscribe();
      state.unwatchFanout?.();
    }
    this.boards.clear();
  }

  /**
   * Adds a listener for a board's moves; answers the board's current epoch
   * once known (read through the fanout when it holds no snapshot of the
   * board). Moves relayed before the answer reach the listener too.
   */
  async watch(board: string, listener: MovesListener): Promise<{ epoch: string; unwatch: () => void }> {
    const state = this.stateOf(board);
    state.listeners.add(listener);
    const unwatch = () => {
      state.listeners.delete(listener);
      this.release(board, state);
    };
    try {
      await state.ready;
    } catch (err) {
      unwatch();
      throw err;
    }
    return { epoch: state.epoch ?? "", unwatch };
  }

  /** How many streams listen, over all boards. */
  get listenerCount(): number {
    let count = 0;
    for (const state of this.boards.values()) count += state.listeners.size;
    return count;
  }

  private stateOf(board: string): RelayedBoard {
    const held = this.boards.get(board);
    if (held) return held;
    const state: RelayedBoard = { listeners: new Set(), subscription: undefined, epoch: undefined, ready: Promise.resolve(), unwatchFanout: undefined };
    this.boards.set(board, state);
    if (this.nats) state.subscription = this.subscribe(board, state);
    state.ready = this.fanout
      .watch(board, (snapshot) => this.onSnapshot(board, state, snapshot))
      .then((unwatch) => {
        if (this.boards.get(board) === state) state.unwatchFanout = unwatch;
        else unwatch(); // every stream left (or the relay stopped) while the board was read
      });
    state.ready.catch(() => {}); // each watcher awaits it and handles the failure
    return state;
  }

  private subscribe(board: string, state: RelayedBoard): Subscription {
    return this.nats!.subscribe(Subjects.boardMoved(board), {
      callback: (err, msg) => {
        if (err) return;
        let moved: BoardMoved;
        try {
          moved = fromBinary(BoardMovedSchema, msg.data);
        } catch (error) {
          this.logger.warn({ err: (error as Error).message, board }, "undecodable board moves");
          return;
        }
        for (const listener of state.listeners) listener(moved);
      },
    });
  }

  private onSnapshot(board: string, state: RelayedBoard, snapshot: BoardSnapshot): void {
    if (state.epoch === undefined) {
      state.epoch = snapshot.epoch;
      return;
    }
    // The fanout never goes back to an older epoch; a top change within the epoch is not news here.
    if (compareEpochs(snapshot.epoch, state.epoch) <= 0) return;
    state.epoch = snapshot.epoch;
    const everything = create(BoardMovedSchema, { board, epoch: snapshot.epoch, asOf: snapshot.asOf, everything: true });
    for (const listener of state.listeners) listener(everything);
  }

  private announceEverything(): void {
    for (const [board, state] of this.boards) {
      if (state.epoch === undefined) continue; // its streams have not had their first message yet
      const everything = create(BoardMovedSchema, { board, epoch: state.epoch, everything: true });
      for (const listener of state.listeners) listener(everything);
    }
  }

  private release(board: string, state: RelayedBoard): void {
    if (state.listeners.size > 0 || this.boards.get(board) !== state) return;
    this.boards.delete(board);
    state.subscription?.unsubscribe();
    state.unwatchFanout?.();
  }
}

/**
 * What one stream has yet to send, as one message: moves that arrive while
 * the reader is busy are appended in order to the waiting message, up to
 * `maxMoves`; past that, or on mixing epochs or an `everything`, the waiting
 * message becomes `everything` of the newest epoch.
 */
export class MovesBacklog {
  private waiting: BoardMoved | undefined;
  /** The waiting message is this backlog's own (not a relayed one other streams share), so it may grow in place. */
  private owned = false;

  constructor(private readonly maxMoves = MAX_PENDING_MOVES) {}

  add(moved: BoardMoved): void {
    const held = this.waiting;
    if (!held) {
      this.waiting = moved.moves.length > this.maxMoves ? everythingOf(moved, moved) : moved;
      this.owned = this.waiting !== moved;
      return;
    }
    if (held.everything || moved.everything || held.epoch !== moved.epoch || held.moves.length + moved.moves.length > this.maxMoves) {
      this.waiting = everythingOf(held, moved);
      this.owned = true;
      return;
    }
    if (!this.owned) {
      this.waiting = create(BoardMovedSchema, { board: held.board, epoch: held.epoch, asOf: held.asOf, moves: [...held.moves] });
      this.owned = true;
    }
    this.waiting!.moves.push(...moved.moves);
    this.waiting!.asOf = moved.asOf ?? held.asOf;
  }

  /** The waiting message, if any; the backlog is empty after. */
  take(): BoardMoved | undefined {
    const next = this.waiting;
    this.waiting = undefined;
    this.owned = false;
    return next;
  }
}

function everythingOf(held: BoardMoved, moved: BoardMoved): BoardMoved {
  const epoch = compareEpochs(moved.epoch, held.epoch) >= 0 ? moved.epoch : held.epoch;
  return create(BoardMovedSchema, { board: held.board || moved.board, epoch, asOf: moved.asOf ?? held.asOf, everything: true });
}

/**
 * One WatchBoardMoves stream: {board, epoch} at once, then every relayed
 * message in order; a reader that falls behind gets them merged (MovesBacklog).
 */
export async function* boardMovesStream(relay: BoardMovesRelay, board: string, signal: AbortSignal, openStreams?: OpenCount): AsyncGenerator<BoardMoved> {
  const backlog = new MovesBacklog();
  let wake: (() => void) | undefined;
  const { epoch, unwatch } = await relay.watch(board, (moved) => {
    backlog.add(moved);
    wake?.();
  });
  openStreams?.inc();
  const onAbort = () => wake?.();
  signal.addEventListener("abort", onAbort);
  try {
    yield create(BoardMovedSchema, { board, epoch });
    while (!signal.aborted) {
      const next = backlog.take();
      if (next) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    openStreams?.dec();
    unwatch();
  }
}

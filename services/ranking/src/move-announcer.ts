import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "nats";
import { BoardMovedSchema, type ScoreChanged } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { Logger } from "@scoreboard/platform/logger";
import { AnnouncementWindow } from "./announcement-window.js";
import { Subjects } from "@scoreboard/platform/nats";
import { aliasOf } from "@scoreboard/platform/periods";
import type { EpochSource } from "./epochs.js";

/** Moves one BoardMoved lists at most; a window with more says `everything` instead. */
export const MAX_MOVES_PER_MESSAGE = 1_000;

/** What the move announcements ask of the boards: which season a defined board's name shows now. */
export interface MovedBoards {
  showsSeason?(boardId: string, season: string): Promise<boolean>;
}

/** One user's move within a window: the score before its first change and after its last (by version). */
interface PendingMove {
  from: number | undefined;
  to: number;
  firstVersion: number;
  lastVersion: number;
}

interface PendingBoard {
  moves: Map<string, PendingMove>;
  /** Too many moves to list, a repair or a rebuild: any standing may have changed. */
  everything: boolean;
}

/**
 * Tells standing watchers (push relays it to the gateway) which entries of a
 * board moved, from which score to which, so a watcher re-reads only the
 * standings a move may have changed. Windowed like BoardChangeAnnouncer: the
 * first change is published at once, further changes within the window
 * together at its end, one message per board with each user's moves merged.
 *
 * Nothing here is read from Redis (only the epoch, cached), and publishing
 * is not awaited: a lost message delays a standing until its watcher's next
 * re-read, it never holds up applying events.
 */
export class BoardMoveAnnouncer {
  private pending = new Map<string, PendingBoard>();
  private readonly window: AnnouncementWindow;

  constructor(
    private readonly nats: Pick<NatsConnection, "publish">,
    private readonly boards: MovedBoards,
    private readonly epochs: EpochSource,
    private readonly logger: Logger,
    windowMs = 20,
  ) {
    this.window = new AnnouncementWindow(
      windowMs,
      () => this.flush(),
      () => this.pending.size > 0,
    );
  }

  /**
   * A grant (ScoreChanged without board_entry) changed these boards (the
   * consumer's changed list: global, the region, period boards): the user
   * went from its new total minus the points to the new total on each.
   */
  granted(event: ScoreChanged, changed: string[]): void {
    const points = Number(event.points);
    const version = Number(event.version);
    const periodScores = new Map(event.periodScores.map((p) => [p.board, Number(p.score)]));
    for (const board of changed) {
      const to = periodScores.get(board) ?? Number(event.newScore);
      this.add(board, event.userId, { from: to - points, to, firstVersion: version, lastVersion: version });
    }
  }

  /**
   * A submission changed a defined board's entry: announced under the
   * board's id when its season is the one the id shows. The event does not
   * carry the previous score, so the move has no `from`.
   */
  definedEntryChanged(event: ScoreChanged): void {
    const entry = event.boardEntry;
    if (!entry) return;
    const version = Number(entry.version);
    const move = { from: undefined, to: Number(entry.score), firstVersion: version, lastVersion: version };
    this.whenShown(entry.boardId, entry.season, () => this.add(entry.boardId, event.userId, move));
  }

  /** Boards a reconciliation repaired or a rebuild loaded: any standing on them may have changed. */
  everything(boards: string[]): void {
    for (const board of boards) {
      const pending = this.pendingOf(board);
      pending.everything = true;
      pending.moves.clear();
    }
    this.schedule();
  }

  /** A defined board's season repaired: `everything` under its id when that season is the one shown. */
  definedBoardRepaired(boardId: string, season: string): void {
    this.whenShown(boardId, season, () => this.everything([boardId]));
  }

  stop(): Promise<void> {
    return this.window.stop();
  }

  private whenShown(boardId: string, season: string, then: () => void): void {
    const shown = this.boards.showsSeason?.(boardId, season) ?? Promise.resolve(false);
    shown.then(
      (current) => {
        if (current) then();
      },
      (err: unknown) => this.logger.warn({ err: (err as Error).message, board: boardId }, "announcing board moves failed"),
    );
  }

  private add(board: string, userId: string, move: PendingMove): void {
    const pending = this.pendingOf(board);
    if (!pending.everything) {
      const earlier = pending.moves.get(userId);
      if (!earlier) pending.moves.set(userId, move);
      else {
        // Events apply in any order within a window: the earliest version's
        // from and the latest version's to are the user's whole move.
        if (move.firstVersion < earlier.firstVersion) [earlier.from, earlier.firstVersion] = [move.from, move.firstVersion];
        if (move.lastVersion > earlier.lastVersion) [earlier.to, earlier.lastVersion] = [move.to, move.lastVersion];
      }
      if (pending.moves.size > MAX_MOVES_PER_MESSAGE) {
        pending.everything = true;
        pending.moves.clear();
      }
    }
    this.schedule();
  }

  private pendingOf(board: string): PendingBoard {
    let pending = this.pending.get(board);
    if (!pending) {
      pending = { moves: new Map(), everything: false };
      this.pending.set(board, pending);
    }
    return pending;
  }

  private schedule(): void {
    this.window.changed();
  }

  private async flush(): Promise<void> {
    const pending = this.pending;
    this.pending = new Map();
    if (pending.size === 0) return;
    // Stamped after the moves were applied: a standing read at or after
    // this time includes them.
    const asOf = timestampNow();
    await Promise.all([...pending].map(([board, moves]) => this.publish(board, moves, asOf)));
  }

  private async publish(board: string, pending: PendingBoard, asOf: Timestamp): Promise<void> {
    try {
      const epoch = await this.epochs.epochOf(board);
      const moves = [...pending.moves].map(([userId, m]) => ({ userId, fromScore: m.from === undefined ? undefined : BigInt(m.from), toScore: BigInt(m.to) }));
      // The current period's board is also watched as "daily", "weekly",
      // "monthly": the same moves, in the concrete board's epoch.
      for (const name of [board, aliasOf(board)]) {
        if (!name) continue;
        const message = create(BoardMovedSchema, { board: name, epoch, moves, asOf, everything: pending.everything });
        this.nats.publish(Subjects.boardMoved(name), toBinary(BoardMovedSchema, message));
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, board }, "announcing board moves failed");
    }
  }
}

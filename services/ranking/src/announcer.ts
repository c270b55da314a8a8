import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "nats";
import { ROOT_CONTEXT, context, type Context } from "@opentelemetry/api";
import { BoardChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { Logger } from "@scoreboard/platform/logger";
import { AnnouncementWindow } from "./announcement-window.js";
import { aliasOf } from "@scoreboard/platform/periods";
import { Subjects } from "@scoreboard/platform/nats";
import { toEntry, type RankedEntry } from "./boards.js";
import { BoardEpochs, NO_DEFINED_BOARDS, type EpochSource } from "./epochs.js";
import { MAX_LIMIT } from "@scoreboard/platform/board-params";
import { SpanKind, injectNats, isTracing, startSpan } from "@scoreboard/platform/tracing";

/** The boards an announcer reads: Boards (seed boards) or Leaderboards (defined boards too). */
export interface AnnouncedBoards {
  page(board: string, offset: number, limit: number): Promise<RankedEntry[]>;
  /** Whether `season` is the season a defined board's name shows now; without it, no defined board is announced. */
  showsSeason?(boardId: string, season: string): Promise<boolean>;
}

/**
 * Tells push replicas a board changed, with its new top 100. The first change
 * is announced at once; further changes within the window are announced
 * together at its end, so a burst costs one Redis read and one message per
 * board and window, and push always ends on the latest state.
 *
 * A top 100 equal to the one last announced in the same epoch is not
 * announced again: most grants move nobody in the top, and push already shows
 * that state (its own refresh covers a replica that missed it). Each message
 * carries the board's epoch (a rebuild or a new season changes it, and push's
 * streams resume by it). Boards a reconciliation repaired
 * are announced anyway (`repaired`): push may show a drift this process never
 * announced.
 */
export class BoardChangeAnnouncer {
  private readonly pending = new Set<string>();
  private readonly forced = new Set<string>();
  /** Per board, the top 100 last announced, as a string to compare. */
  private readonly announced = new Map<string, string>();
  private readonly window: AnnouncementWindow;
  /** Per pending board, the trace of the latest event that changed it: the state announced is that event's. */
  private causes = new Map<string, Context>();

  constructor(
    private readonly nats: NatsConnection,
    private readonly boards: AnnouncedBoards,
    private readonly logger: Logger,
    windowMs = 20,
    /** Each message's epoch; without it, generation 0 (tests). */
    private readonly epochs: EpochSource = new BoardEpochs(undefined, NO_DEFINED_BOARDS),
  ) {
    this.window = new AnnouncementWindow(
      windowMs,
      () => this.flush(),
      () => this.pending.size > 0,
    );
  }

  /** Boards a reconciliation repaired: announced even when their top looks unchanged. */
  repaired(boards: string[]): void {
    for (const board of boards) this.forced.add(board);
    this.changed(boards);
  }

  /**
   * A defined board's season changed: announced under the board's id when
   * that season is the one its streams show (an event of a season that just
   * ended changes nothing they show).
   */
  definedBoardChanged(boardId: string, season: string): void {
    const cause = context.active();
    const shown = this.boards.showsSeason?.(boardId, season) ?? Promise.resolve(false);
    shown.then(
      (current) => {
        if (current) context.with(cause, () => this.changed([boardId]));
      },
      (err: unknown) => this.logger.warn({ err: (err as Error).message, board: boardId }, "announcing board change failed"),
    );
  }

  changed(boards: string[]): void {
    for (const board of boards) this.pending.add(board);
    if (isTracing()) for (const board of boards) this.causes.set(board, context.active());
    this.window.changed();
  }

  private async flush(): Promise<void> {
    const boards = [...this.pending];
    this.pending.clear();
    if (boards.length === 0) return;
    const forced = new Set(this.forced);
    this.forced.clear();
    const causes = this.causes;
    this.causes = new Map();
    // Stamped before the reads: the tops are at least this new, so push's
    // "newer asOf wins" can never prefer an older read.
    const asOf = timestampNow();
    await Promise.all(boards.map((board) => this.announce(board, asOf, causes.get(board), forced.has(board))));
  }

  private async announce(board: string, asOf: Timestamp, cause: Context | undefined, force: boolean): Promise<void> {
    const span = startSpan("announce board change", SpanKind.PRODUCER, cause ?? ROOT_CONTEXT, { "scoreboard.board": board });
    try {
      const [ranked, epoch] = await Promise.all([this.boards.page(board, 0, MAX_LIMIT), this.epochs.epochOf(board)]);
      const signature = `${epoch}\u0002${ranked.map((e) => `${e.userId}\u0000${e.username}\u0000${e.score}`).join("\u0001")}`;
      if (!force && this.announced.get(board) === signature) {
        span?.setAttribute("scoreboard.unchanged", true);
        return;
      }
      // Period boards add a key a day; forget them all now and then (at worst one repeat each).
      if (this.announced.size >= 1_000) this.announced.clear();
      this.announced.set(board, signature);
      // Fields may come in any order: the top is encoded once and each name's
      // board field put before it (the current period's board is also watched
      // as "daily", "weekly", "monthly", in the concrete board's epoch).
      const body = toBinary(BoardChangedSchema, create(BoardChangedSchema, { top: ranked.map(toEntry), asOf, epoch }));
      for (const name of [board, aliasOf(board)]) {
        if (!name) continue;
        const head = toBinary(BoardChangedSchema, create(BoardChangedSchema, { board: name }));
        this.nats.publish(Subjects.boardChanged(name), Buffer.concat([head, body]), { headers: injectNats(span) });
      }
    } catch (err) {
      // Push refreshes on its own every few seconds; a lost announcement only delays.
      this.logger.warn({ err: (err as Error).message, board }, "announcing board change failed");
    } finally {
      span?.end();
    }
  }

  stop(): Promise<void> {
    return this.window.stop();
  }
}

import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "nats";
import { ROOT_CONTEXT, context, type Context } from "@opentelemetry/api";
import { BoardChangedSchema } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { Logger } from "@scoreboard/platform/logger";
import { aliasOf } from "@scoreboard/platform/periods";
import { Subjects } from "@scoreboard/platform/nats";
import { toEntry, type Boards } from "./boards.js";
import { MAX_LIMIT } from "@scoreboard/platform/board-params";
import { SpanKind, injectNats, isTracing, startSpan } from "@scoreboard/platform/tracing";

/**
 * Tells push replicas a board changed, with its new top 100. The first change
 * is announced at once; further changes within the window are announced
 * together at its end, so a burst costs one Redis read and one message per
 * board and window, and push always ends on the latest state.
 */
export class BoardChangeAnnouncer {
  private readonly pending = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  /** Per pending board, the trace of the latest event that changed it: the state announced is that event's. */
  private causes = new Map<string, Context>();

  constructor(
    private readonly nats: NatsConnection,
    private readonly boards: Boards,
    private readonly logger: Logger,
    private readonly windowMs = 20,
  ) {}

  changed(boards: string[]): void {
    for (const board of boards) this.pending.add(board);
    if (isTracing()) for (const board of boards) this.causes.set(board, context.active());
    if (this.timer) return; // inside a window: its end announces these
    this.flushing = this.afterPrevious();
    this.timer = setTimeout(() => this.endWindow(), this.windowMs);
  }

  private endWindow(): void {
    this.timer = undefined;
    if (this.pending.size === 0) return;
    this.flushing = this.afterPrevious();
    this.timer = setTimeout(() => this.endWindow(), this.windowMs);
  }

  // One flush at a time: two overlapping flushes could publish an older read
  // after a newer one.
  private afterPrevious(): Promise<void> {
    return this.flushing.then(() => this.flush());
  }

  private async flush(): Promise<void> {
    const boards = [...this.pending];
    this.pending.clear();
    if (boards.length === 0) return;
    const causes = this.causes;
    this.causes = new Map();
    // Stamped before the reads: the tops are at least this new, so push's
    // "newer asOf wins" can never prefer an older read.
    const asOf = timestampNow();
    await Promise.all(boards.map((board) => this.announce(board, asOf, causes.get(board))));
  }

  private async announce(board: string, asOf: Timestamp, cause: Context | undefined): Promise<void> {
    const span = startSpan("announce board change", SpanKind.PRODUCER, cause ?? ROOT_CONTEXT, { "scoreboard.board": board });
    try {
      const top = (await this.boards.page(board, 0, MAX_LIMIT)).map(toEntry);
      // The current period's board is also watched as "daily", "weekly", "monthly".
      for (const name of [board, aliasOf(board)]) {
        if (!name) continue;
        const message = create(BoardChangedSchema, { board: name, top, asOf });
        this.nats.publish(Subjects.boardChanged(name), toBinary(BoardChangedSchema, message), { headers: injectNats(span) });
      }
    } catch (err) {
      // Push refreshes on its own every few seconds; a lost announcement only delays.
      this.logger.warn({ err: (err as Error).message, board }, "announcing board change failed");
    } finally {
      span?.end();
    }
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    if (this.pending.size > 0) await this.flush();
  }
}

import { sql } from "kysely";
import type { BoardDefinitionsTable, Db } from "@scoreboard/platform/db";
import type { Logger } from "@scoreboard/platform/logger";
import { boardEntryChangedOf } from "./boards/board-events.js";
import { encodeScoreChanged, type EventPublisher, type OutboxEvent } from "./events.js";

export interface OutboxRelayOptions {
  /** Rows per cycle, and so events per JetStream message at most. */
  batchSize: number;
  /** How often to look for rows nobody kicked us about (other replicas, crashes). */
  pollIntervalMs: number;
  /**
   * Under load, cycles start at most this often, so the grants of a burst go
   * out in one batch (one transaction here, one JetStream message) instead of
   * one cycle each; a kick after a quiet spell still publishes at once.
   */
  coalesceMs: number;
}

/**
 * Moves committed outbox rows to JetStream, a cycle's rows as one batch
 * message. Rows are claimed with FOR UPDATE SKIP LOCKED inside a transaction
 * that deletes them only after JetStream acknowledged the batch, so
 * any number of relays can run and a slow transaction's row is never
 * skipped: we select by state, not by "id > last". A crash between the
 * publish and the delete publishes those rows again, perhaps in a batch
 * composed differently (an exact retry is deduplicated by Nats-Msg-Id): each
 * event reaches the stream at least once, and counts exactly once because
 * ranking sets absolute totals, newest version winning.
 */
export class OutboxRelay {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private failures = 0;
  private lastCycleAt = 0;

  constructor(
    private readonly db: Db,
    private readonly publisher: EventPublisher,
    private readonly logger: Logger,
    private readonly options: OutboxRelayOptions,
  ) {}

  start(): void {
    this.schedule(0);
  }

  /** Called after a commit: publish now rather than at the next poll. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.schedule(this.untilWindowEnds());
  }

  private untilWindowEnds(): number {
    return Math.max(0, this.lastCycleAt + this.options.coalesceMs - Date.now());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Publishes everything unpublished right now; returns how many rows it moved. */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const moved = await this.publishBatch();
      total += moved;
      if (moved < this.options.batchSize) return total;
    }
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.cycle().finally(() => {
        this.running = undefined;
      });
    }, delayMs);
  }

  private async cycle(): Promise<void> {
    if (this.stopped) return;
    let delay = this.options.pollIntervalMs;
    this.lastCycleAt = Date.now();
    try {
      this.again = false;
      await this.drain();
      this.failures = 0;
      if (this.again) delay = this.untilWindowEnds();
    } catch (err) {
      this.failures += 1;
      delay = Math.min(100 * 2 ** this.failures, 5_000);
      this.logger.warn({ err: errorMessage(err), retryInMs: delay }, "outbox relay failed, will retry");
    }
    if (!this.stopped) this.schedule(delay);
  }

  private async publishBatch(): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom("outbox")
        .innerJoin("ledger", "ledger.id", "outbox.ledger_id")
        .innerJoin("users", "users.user_id", "ledger.user_id")
        // A board submission's row is published with its board's rules.
        .leftJoin("board_definitions", "board_definitions.board_id", "ledger.board_id")
        .select([
          "outbox.id",
          "outbox.ledger_id",
          "outbox.payload",
          "outbox.trace_context",
          "ledger.request_id",
          "ledger.user_id",
          "users.username",
          "users.region",
          "ledger.action_id",
          "ledger.points",
          "ledger.new_score",
          "ledger.version",
          "ledger.created_at",
          "ledger.period_scores",
          "ledger.board_id",
          "ledger.season",
          "ledger.subscore",
          sql<string | null>`ledger.metadata::text`.as("metadata"),
          "board_definitions.sort_order",
          "board_definitions.tie_rule",
          "board_definitions.reset_schedule",
          "board_definitions.time_zone",
          "board_definitions.retained_seasons",
        ])
        .where("outbox.published_at", "is", null)
        .orderBy("outbox.id")
        .limit(this.options.batchSize)
        .forUpdate("outbox")
        .skipLocked()
        .execute();
      if (rows.length === 0) return 0;
      await this.publisher.publish(rows.map(outboxEvent));
      // Published rows go at once: the ledger keeps what they said and
      // JetStream what was sent, and a table of published rows kept "for
      // inspection" cost an update per grant and grew by a day of grants.
      await trx
        .deleteFrom("outbox")
        .where(
          "id",
          "in",
          rows.map((r) => r.id),
        )
        .execute();
      return rows.length;
    });
  }
}

/**
 * A row's event. Rows written before the relay encoded events carry the
 * encoded ScoreChanged in `payload`; it goes into the batch as it is.
 */
function outboxEvent(row: {
  ledger_id: number;
  payload: Uint8Array | null;
  trace_context: Record<string, string> | null;
  request_id: string;
  user_id: string;
  username: string;
  region: string | null;
  action_id: string | null;
  points: number;
  new_score: number | null;
  version: number | null;
  created_at: Date;
  period_scores: Record<string, number> | null;
  board_id: string | null;
  season: string | null;
  subscore: number | null;
  metadata: string | null;
  sort_order: BoardDefinitionsTable["sort_order"] | null;
  tie_rule: BoardDefinitionsTable["tie_rule"] | null;
  reset_schedule: string | null;
  time_zone: string | null;
  retained_seasons: number | null;
}): OutboxEvent {
  const payload =
    row.payload ??
    encodeScoreChanged({
      ledgerId: row.ledger_id,
      requestId: row.request_id,
      userId: row.user_id,
      username: row.username,
      actionId: row.action_id,
      points: row.points,
      newScore: row.new_score ?? 0,
      version: row.version ?? 0,
      createdAt: row.created_at,
      region: row.region,
      periodScores: row.period_scores,
      boardEntry: row.board_id !== null ? boardEntryOf(row) : undefined,
    });
  return { ledgerId: String(row.ledger_id), payload, traceContext: row.trace_context };
}

function boardEntryOf(row: Parameters<typeof outboxEvent>[0]) {
  // The definition's row exists: the ledger's board_id references it.
  return boardEntryChangedOf({
    board_id: row.board_id!,
    season: row.season!,
    new_score: row.new_score,
    subscore: row.subscore,
    metadata: row.metadata,
    version: row.version,
    created_at: row.created_at,
    sort_order: row.sort_order!,
    tie_rule: row.tie_rule!,
    reset_schedule: row.reset_schedule!,
    time_zone: row.time_zone!,
    retained_seasons: row.retained_seasons!,
  });
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

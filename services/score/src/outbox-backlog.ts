import { sql } from "kysely";
import type { Db } from "@scoreboard/platform/db";
import type { Logger } from "@scoreboard/platform/logger";
import { sampleEvery, type Tally } from "@scoreboard/platform/metrics";

/** Past this the backlog reads as the cap: the count must stay cheap exactly when the relay is behind. */
export const OUTBOX_BACKLOG_CAP = 100_000;

/** How far the relay is behind the ledger. */
export interface OutboxBacklog {
  /** Unpublished rows, up to OUTBOX_BACKLOG_CAP. */
  rows: number;
  /** Seconds since the oldest unpublished row was committed; 0 when there is none. */
  oldestAgeSeconds: number;
}

/**
 * Both from outbox_unpublished_idx: an index-only walk up to the cap, and the
 * lowest unpublished id (ids grow with commits, near enough for an age in
 * seconds). Ages come from PostgreSQL's clock, the one that stamped the rows.
 */
export async function readOutboxBacklog(db: Db): Promise<OutboxBacklog> {
  const { rows } = await sql<{ backlog: number; oldest_age: number }>`
    SELECT
      (SELECT count(*)::int FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT ${OUTBOX_BACKLOG_CAP}) unpublished) AS backlog,
      COALESCE((SELECT EXTRACT(EPOCH FROM now() - created_at)::float8 FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1), 0) AS oldest_age`.execute(
    db,
  );
  return { rows: Number(rows[0]?.backlog ?? 0), oldestAgeSeconds: Math.max(0, Number(rows[0]?.oldest_age ?? 0)) };
}

interface Settable {
  set(value: number): void;
}

/**
 * Samples the backlog into two gauges every intervalMs. A growing backlog,
 * or an oldest row getting older, means the relay cannot publish (NATS down,
 * or slower than the writes); the age is what the outbox-stalled alert reads,
 * since a steady backlog of fresh rows is only load. A failed sample counts
 * as a PostgreSQL error and keeps the last values.
 */
export function watchOutboxBacklog(
  read: () => Promise<OutboxBacklog>,
  gauges: { rows: Settable; oldestAgeSeconds: Settable },
  postgresErrors: Tally,
  logger: Logger,
  intervalMs = 5_000,
): () => void {
  return sampleEvery(
    intervalMs,
    async () => {
      const backlog = await read();
      gauges.rows.set(backlog.rows);
      gauges.oldestAgeSeconds.set(backlog.oldestAgeSeconds);
    },
    (err, first) => {
      postgresErrors.inc();
      if (first) logger.warn({ err: (err as Error).message }, "sampling the outbox backlog failed");
    },
  );
}

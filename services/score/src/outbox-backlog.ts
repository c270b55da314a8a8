import { sql } from "kysely";
import type { Db } from "@scoreboard/platform/db";
import type { Logger } from "@scoreboard/platform/logger";
import { sampleEvery, type Tally } from "@scoreboard/platform/metrics";

/** Past this the backlog reads as the cap: the count must stay cheap exactly when the relay is behind. */
export const OUTBOX_BACKLOG_CAP = 100_000;

/** Unpublished outbox rows, up to the cap (an index-only walk of outbox_unpublished_idx). */
export async function countOutboxBacklog(db: Db): Promise<number> {
  const { rows } = await sql<{ backlog: number }>`
    SELECT count(*)::int AS backlog
    FROM (SELECT 1 FROM outbox WHERE published_at IS NULL LIMIT ${OUTBOX_BACKLOG_CAP}) unpublished`.execute(db);
  return Number(rows[0]?.backlog ?? 0);
}

/**
 * Samples the backlog into a gauge every intervalMs. A growing backlog means
 * the relay cannot publish (NATS down, or slower than the writes); a failed
 * sample counts as a PostgreSQL error and keeps the last value.
 */
export function watchOutboxBacklog(
  db: Db,
  backlog: { set(value: number): void },
  postgresErrors: Tally,
  logger: Logger,
  intervalMs = 5_000,
): () => void {
  return sampleEvery(
    intervalMs,
    async () => {
      backlog.set(await countOutboxBacklog(db));
    },
    (err, first) => {
      postgresErrors.inc();
      if (first) logger.warn({ err: (err as Error).message }, "sampling the outbox backlog failed");
    },
  );
}

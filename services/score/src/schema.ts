import { sql, type Kysely } from "kysely";
import { migrateSchema, type Db, type SchemaMigrations } from "@scoreboard/platform/db";
import { schemaCheck } from "@scoreboard/platform/probes";
import { applyBoardFunctions } from "./boards/board-functions.js";
import { applyGrantFunctions } from "./grant-functions.js";
import * as foundation from "./migrations/2026_11_23_001_foundation.js";
import * as writePath from "./migrations/2026_11_23_002_write_path.js";
import * as grantFunction from "./migrations/2026_11_23_003_grant_function.js";
import * as grantBatch from "./migrations/2026_11_23_004_grant_batch.js";
import * as regions from "./migrations/2026_11_23_005_regions.js";
import * as periodBoards from "./migrations/2026_11_23_006_period_boards.js";
import * as outboxTraceContext from "./migrations/2026_11_23_007_outbox_trace_context.js";
import * as regionWithGrant from "./migrations/2026_11_23_008_region_with_grant.js";
import * as replayAfterConflict from "./migrations/2026_11_23_009_replay_after_conflict.js";
import * as outboxDeleteOnPublish from "./migrations/2026_12_06_010_outbox_delete_on_publish.js";
import * as definedBoards from "./migrations/2026_12_06_011_defined_boards.js";

// Score owns the schema: its dated migrations, then the grant's and the board
// submission's functions re-applied whole (grant-functions.ts,
// boards/board-functions.ts). Other services read these tables and
// name the newest migration they rely on; none imports this module.
export const scoreSchema: SchemaMigrations = {
  migrations: {
    "2026_11_23_001_foundation": foundation,
    "2026_11_23_002_write_path": writePath,
    "2026_11_23_003_grant_function": grantFunction,
    "2026_11_23_004_grant_batch": grantBatch,
    "2026_11_23_005_regions": regions,
    "2026_11_23_006_period_boards": periodBoards,
    "2026_11_23_007_outbox_trace_context": outboxTraceContext,
    "2026_11_23_008_region_with_grant": regionWithGrant,
    "2026_11_23_009_replay_after_conflict": replayAfterConflict,
    "2026_12_06_010_outbox_delete_on_publish": outboxDeleteOnPublish,
    "2026_12_06_011_defined_boards": definedBoards,
  },
  repeatable: async (trx) => {
    await applyGrantFunctions(trx);
    await applyBoardFunctions(trx);
  },
};

/** Migrates score's schema (the Migrator takes a lock: replicas may race); answers the migrations applied. */
export function migrateToLatest(db: Db): Promise<string[]> {
  return migrateSchema(db, scoreSchema);
}

/** Readiness: every migration this build knows has run. */
export function migrationsCheck(db: Db) {
  return schemaCheck(db, Object.keys(scoreSchema.migrations));
}

/**
 * Creates the monthly audit partitions for this month and the next
 * `monthsAhead`, idempotently. Run at score start and by the migrate job; rows of a month without a
 * partition fall into audit_log_default and are never lost.
 */
// biome-ignore lint/suspicious/noExplicitAny: any database that ran this migration
export async function ensureAuditPartitions(db: Kysely<any>, now = new Date(), monthsAhead = 2): Promise<void> {
  for (let i = 0; i <= monthsAhead; i++) {
    const from = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1));
    const to = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth() + 1, 1));
    const name = `audit_log_${from.getUTCFullYear()}_${String(from.getUTCMonth() + 1).padStart(2, "0")}`;
    const exists = await sql<{ found: boolean }>`SELECT to_regclass(${name}) IS NOT NULL AS found`.execute(db);
    if (exists.rows[0]?.found) continue;
    try {
      await sql`CREATE TABLE ${sql.table(name)} PARTITION OF audit_log FOR VALUES FROM (${sql.lit(from.toISOString())}) TO (${sql.lit(to.toISOString())})`.execute(
        db,
      );
    } catch (err) {
      // Another replica created it first, or rows for that month already sit
      // in the default partition (then they stay there; nothing is lost).
      if (!/already exists|would be violated by some row/.test((err as Error).message)) throw err;
    }
  }
}

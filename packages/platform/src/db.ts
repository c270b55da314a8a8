import { Kysely, Migrator, PostgresDialect, type Generated, type ColumnType, type Migration } from "kysely";
import pg from "pg";
import * as foundation from "./migrations/2026_11_23_001_foundation.js";
import * as writePath from "./migrations/2026_11_23_002_write_path.js";
import * as grantFunction from "./migrations/2026_11_23_003_grant_function.js";
import * as grantBatch from "./migrations/2026_11_23_004_grant_batch.js";
import * as regions from "./migrations/2026_11_23_005_regions.js";
import * as periodBoards from "./migrations/2026_11_23_006_period_boards.js";
import * as outboxTraceContext from "./migrations/2026_11_23_007_outbox_trace_context.js";
import * as regionWithGrant from "./migrations/2026_11_23_008_region_with_grant.js";
import * as replayAfterConflict from "./migrations/2026_11_23_009_replay_after_conflict.js";

// PostgreSQL BIGINT arrives as a string by default; every bigint we store
// (scores, ids, versions) stays far below 2^53, so read it as a number.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface UsersTable {
  user_id: string;
  username: string;
  role: Generated<string>;
  /** SHA-256 hex of the user's API key (seed 001's X-API-Key), if any. */
  api_key_hash: string | null;
  /** The user's region board ("eu", "us"), from the profile or the token's `region` claim. */
  region: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Generated<Date>;
}

export interface ActionsTable {
  action_id: string;
  points: number;
  description: Generated<string>;
  requires_ticket: Generated<boolean>;
  created_at: Generated<Date>;
}

export interface LedgerTable {
  id: Generated<number>;
  request_id: Generated<string>;
  user_id: string;
  /** NULL for a direct increment. */
  action_id: string | null;
  kind: Generated<"action" | "increment">;
  points: number;
  /** The user's total right after this entry: what a retry answers again. */
  new_score: number | null;
  /** The user's score version right after this entry (orders events per user). */
  version: number | null;
  idempotency_key: string | null;
  ticket_jti: string | null;
  /** Which API the grant came through (for the audit trail). */
  source: Generated<string>;
  created_at: Generated<Date>;
  /** The user's totals on the period boards this entry counted on, e.g. {"daily:2026-11-23": 30}. */
  period_scores: ColumnType<Record<string, number> | null, never, never>;
}

/** A user's total on one period board (filled by the ledger trigger). */
export interface PeriodScoresTable {
  board: string;
  user_id: string;
  score: number;
  reached_at: Date;
}

export interface AuditLogTable {
  id: Generated<number>;
  at: Generated<Date>;
  user_id: string | null;
  operation: string;
  outcome: "granted" | "refused";
  reason: string;
  request_id: string | null;
  detail: ColumnType<unknown, string | undefined, string>;
}

export interface ScoresTable {
  user_id: string;
  score: number;
  version: number;
  updated_at: Timestamp;
}

export interface OutboxTable {
  id: Generated<number>;
  ledger_id: number;
  subject: string;
  /** Legacy rows carry their encoded event; newer ones are built from the ledger at publish time. */
  payload: Uint8Array | null;
  created_at: Generated<Date>;
  published_at: Timestamp | null;
  /** The grant's W3C trace context ({traceparent, tracestate?}) when it was traced; the relay's publish continues it. */
  trace_context: ColumnType<Record<string, string> | null, never, never>;
}

export interface Database {
  users: UsersTable;
  actions: ActionsTable;
  ledger: LedgerTable;
  scores: ScoresTable;
  period_scores: PeriodScoresTable;
  outbox: OutboxTable;
  audit_log: AuditLogTable;
}

export type Db = Kysely<Database>;

export function createDb(databaseUrl: string, maxConnections = 10): Db {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: maxConnections });
  // An idle client losing its server (PostgreSQL restart) emits 'error' on the
  // pool; without a listener that would crash the process.
  pool.on("error", () => {});
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

// Migrations are listed here, not discovered on disk, so a bundle or image
// cannot silently miss one.
const migrations: Record<string, Migration> = {
  "2026_11_23_001_foundation": foundation,
  "2026_11_23_002_write_path": writePath,
  "2026_11_23_003_grant_function": grantFunction,
  "2026_11_23_004_grant_batch": grantBatch,
  "2026_11_23_005_regions": regions,
  "2026_11_23_006_period_boards": periodBoards,
  "2026_11_23_007_outbox_trace_context": outboxTraceContext,
  "2026_11_23_008_region_with_grant": regionWithGrant,
  "2026_11_23_009_replay_after_conflict": replayAfterConflict,
};

export async function migrateToLatest(db: Db): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}

/** The migrations this build knows that the database has not run (readiness: never serve an older schema). */
export async function pendingMigrations(db: Db): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } });
  return (await migrator.getMigrations()).filter((m) => m.executedAt === undefined).map((m) => m.name);
}

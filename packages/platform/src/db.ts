import { Kysely, Migrator, PostgresDialect, sql, type Generated, type ColumnType, type Migration } from "kysely";
import pg from "pg";
import type { Logger } from "./logger.js";

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
  kind: Generated<"action" | "increment" | "board">;
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
  /** A submission's board, its season and what was submitted (kind "board"); new_score/version are then the entry's. */
  board_id: ColumnType<string | null, string | null | undefined, never>;
  season: ColumnType<string | null, string | null | undefined, never>;
  board_score: ColumnType<number | null, number | null | undefined, never>;
  subscore: ColumnType<number | null, number | null | undefined, never>;
  metadata: ColumnType<Record<string, unknown> | null, string | null | undefined, never>;
  /** Whether the submission changed the entry (a worse "best" does not). */
  board_changed: ColumnType<boolean | null, boolean | null | undefined, never>;
}

/** A board's definition (services/score's migration 011; boards.proto's BoardDefinition). */
export interface BoardDefinitionsTable {
  board_id: string;
  title: string;
  sort_order: "desc" | "asc";
  operator: "incr" | "decr" | "best" | "set";
  reset_schedule: Generated<string>;
  time_zone: Generated<string>;
  tie_rule: "first" | "subscore";
  min_score: number | null;
  max_score: number | null;
  write_scopes: Generated<string[]>;
  requires_ticket: Generated<boolean>;
  metadata_max_bytes: Generated<number>;
  retained_seasons: Generated<number>;
  builtin: Generated<boolean>;
  archived_at: Timestamp | null;
  revision: Generated<number>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

/** A user's entry on a defined board in one season. */
export interface BoardEntriesTable {
  board_id: string;
  season: string;
  user_id: string;
  score: number;
  subscore: Generated<number>;
  metadata: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  reached_at: Timestamp;
  version: number;
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
  board_definitions: BoardDefinitionsTable;
  board_entries: BoardEntriesTable;
}

export type Db = Kysely<Database>;

/**
 * The one place pg clients are made: kysely's, every query's, the outbox
 * relay's, one-shot jobs'. A pg Client emits 'error' when its server goes away
 * (PostgreSQL restarting: "terminating connection due to administrator
 * command", ECONNRESET, "Connection terminated unexpectedly"), and an
 * 'error' event nobody listens to kills the process. pg-pool listens only
 * while a client is idle in the pool: a checked-out one (a transaction, the
 * relay holding its claim across a JetStream publish) has no listener. So
 * every client gets one as it is created ('connect'); the query it was
 * running fails with the same error, and the pool drops the broken client
 * when it is released, so the next checkout connects afresh.
 */
export function createDb(databaseUrl: string, maxConnections = 10, logger?: Pick<Logger, "warn">): Db {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: maxConnections,
    // A connect that hangs (a partitioned network) fails instead of holding a caller forever.
    connectionTimeoutMillis: 10_000,
    // A dead peer on a quiet connection is noticed by TCP, not only by the next query.
    keepAlive: true,
  });
  let lastError = "";
  const report = (err: Error) => {
    // Once per distinct message: a restart fails every client at once.
    if (err.message !== lastError) logger?.warn({ err: err.message }, "postgres connection lost");
    lastError = err.message;
  };
  pool.on("connect", (client) => {
    lastError = "";
    client.on("error", report);
  });
  // Idle clients' errors come here too (pg-pool re-emits them).
  pool.on("error", report);
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * A schema as its owner declares it (score's: services/score/src/schema.ts).
 * `migrations` are dated and run once each, in name order; they are listed,
 * not discovered on disk, so a bundle or image cannot silently miss one.
 * `repeatable` then re-applies what is replaced whole rather than altered
 * (functions, with CREATE OR REPLACE), so it is defined in one place.
 */
export interface SchemaMigrations {
  migrations: Record<string, Migration>;
  // biome-ignore lint/suspicious/noExplicitAny: any database these migrations made
  repeatable?: (trx: Kysely<any>) => Promise<unknown>;
}

// kysely's own migration lock (PostgresAdapter), so the repeatable step waits
// for any process's migrations and two processes never replace a function at
// once (concurrent CREATE OR REPLACE fails with "tuple concurrently updated").
const MIGRATION_LOCK_ID = 3853314791062309107n;

/** Runs the pending migrations, then the repeatable step; answers the migrations applied. */
export async function migrateSchema(db: Db, schema: SchemaMigrations): Promise<string[]> {
  const migrator = new Migrator({ db, provider: { getMigrations: async () => schema.migrations } });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  const { repeatable } = schema;
  if (repeatable) {
    await db.transaction().execute(async (trx) => {
      await sql`SELECT pg_advisory_xact_lock(${sql.lit(MIGRATION_LOCK_ID)})`.execute(trx);
      await repeatable(trx);
    });
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}

/** Of the named migrations, those the database has not run (readiness: never serve an older schema than this build reads). */
export async function missingMigrations(db: Db, names: readonly string[]): Promise<string[]> {
  const { rows: table } = await sql<{ found: boolean }>`SELECT to_regclass('kysely_migration') IS NOT NULL AS found`.execute(db);
  if (!table[0]?.found) return [...names];
  const { rows } = await sql<{ name: string }>`SELECT name FROM kysely_migration`.execute(db);
  const applied = new Set(rows.map((r) => r.name));
  return names.filter((name) => !applied.has(name));
}

import { sql, type Kysely } from "kysely";

// Direct increments, retries, action tickets, API keys and the audit log.
//
// The ledger stays one unpartitioned table: PostgreSQL requires a unique
// constraint on a partitioned table to include the partition key, which
// would turn "(user, action) once ever" into "once per month". The audit
// log, which only grows and is queried by time, is the partitioned one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("users").addColumn("api_key_hash", "text").execute();

  await db.schema
    .alterTable("actions")
    .addColumn("requires_ticket", "boolean", (c) => c.notNull().defaultTo(false))
    .execute();

  // action_id NULL = a direct increment; NULLs are distinct, so the
  // (user_id, action_id) uniqueness keeps meaning "each action once".
  await sql`ALTER TABLE ledger ALTER COLUMN action_id DROP NOT NULL`.execute(db);
  await db.schema
    .alterTable("ledger")
    .addColumn("kind", "text", (c) => c.notNull().defaultTo("action").check(sql`kind IN ('action', 'increment')`))
    .addColumn("new_score", "bigint")
    .addColumn("idempotency_key", "text")
    .addColumn("ticket_jti", "text", (c) => c.unique())
    .addColumn("source", "text", (c) => c.notNull().defaultTo(""))
    .execute();
  await sql`ALTER TABLE ledger ADD CONSTRAINT ledger_kind_action CHECK ((kind = 'action') = (action_id IS NOT NULL))`.execute(db);
  await sql`CREATE UNIQUE INDEX ledger_user_idempotency_key ON ledger (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL`.execute(db);
  await sql`UPDATE ledger l SET new_score = s.score FROM scores s WHERE s.user_id = l.user_id AND l.new_score IS NULL`.execute(db);

  await sql`
    CREATE TABLE audit_log (
      id bigint GENERATED ALWAYS AS IDENTITY,
      at timestamptz NOT NULL DEFAULT now(),
      user_id text,
      operation text NOT NULL,
      outcome text NOT NULL CHECK (outcome IN ('granted', 'refused')),
      reason text NOT NULL,
      request_id uuid,
      detail jsonb NOT NULL DEFAULT '{}'::jsonb,
      PRIMARY KEY (id, at)
    ) PARTITION BY RANGE (at)`.execute(db);
  // Rows outside every monthly partition land here instead of failing the write.
  await sql`CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT`.execute(db);
  await sql`CREATE INDEX audit_log_user_idx ON audit_log (user_id, at)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS audit_log CASCADE`.execute(db);
  await sql`DROP INDEX IF EXISTS ledger_user_idempotency_key`.execute(db);
  await sql`ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_kind_action`.execute(db);
  await db.schema
    .alterTable("ledger")
    .dropColumn("kind")
    .dropColumn("new_score")
    .dropColumn("idempotency_key")
    .dropColumn("ticket_jti")
    .dropColumn("source")
    .execute();
  await db.schema.alterTable("actions").dropColumn("requires_ticket").execute();
  await db.schema.alterTable("users").dropColumn("api_key_hash").execute();
}

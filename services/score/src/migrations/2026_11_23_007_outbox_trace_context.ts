import { sql, type Kysely } from "kysely";

// A grant's trace continues when the relay publishes its event, later and in
// another batch: the grant's W3C trace context ({"traceparent", "tracestate"})
// is stored with its outbox row, in the grant's transaction (sb_grant_batch(),
// services/score/src/grant-functions.ts), and the relay's publish span becomes
// its child. NULL when the grant was not traced.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE outbox ADD COLUMN trace_context jsonb`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE outbox DROP COLUMN IF EXISTS trace_context`.execute(db);
}

import { sql, type Kysely } from "kysely";

// A grant's trace continues when the relay publishes its event, later and in
// another batch: the grant's W3C trace context ({"traceparent", "tracestate"})
// is stored with its outbox row, in the grant's transaction, and the relay's
// publish span becomes its child. NULL when the grant was not traced.
//
// sb_grant() is unchanged; sb_grant_batch() (last replaced by migration 005)
// writes the context of each traced grant it made, only when a grant carries
// one, so an untraced grant costs nothing more.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE outbox ADD COLUMN trace_context jsonb`.execute(db);
  await grantBatchWithTraceContext(db);
}

/** sb_grant_batch() as of this migration (migration 008 restores it on the way down). */
export async function grantBatchWithTraceContext(db: Kysely<unknown>): Promise<void> {
  await sql`
CREATE OR REPLACE FUNCTION sb_grant_batch(p_grants jsonb, p_subject text)
RETURNS TABLE (ord int, outcome text, ledger_id bigint, request_id uuid, points bigint, new_score bigint, version bigint, detail text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  g jsonb;
  i int := 0;
  r record;
BEGIN
  FOR g IN SELECT value FROM jsonb_array_elements(p_grants) LOOP
    SELECT * INTO r
      FROM sb_grant(g->>'userId', g->>'username', (g->>'requireRegistration')::boolean, g->>'actionId',
                    (g->>'delta')::bigint, g->>'idempotencyKey', g->>'ticketJti', g->>'source', p_subject);
    IF r.outcome = 'granted' AND g ? 'traceContext' THEN
      UPDATE outbox o SET trace_context = g->'traceContext' WHERE o.ledger_id = r.ledger_id;
    END IF;
    IF g->>'region' IS NOT NULL THEN
      UPDATE users u SET region = g->>'region' WHERE u.user_id = g->>'userId' AND u.region IS DISTINCT FROM g->>'region';
    END IF;
    RETURN QUERY SELECT i, r.outcome, r.ledger_id, r.request_id, r.points, r.new_score, r.version, r.detail;
    i := i + 1;
  END LOOP;
END
$fn$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`
CREATE OR REPLACE FUNCTION sb_grant_batch(p_grants jsonb, p_subject text)
RETURNS TABLE (ord int, outcome text, ledger_id bigint, request_id uuid, points bigint, new_score bigint, version bigint, detail text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  g jsonb;
  i int := 0;
BEGIN
  FOR g IN SELECT value FROM jsonb_array_elements(p_grants) LOOP
    RETURN QUERY SELECT i, r.outcome, r.ledger_id, r.request_id, r.points, r.new_score, r.version, r.detail
      FROM sb_grant(g->>'userId', g->>'username', (g->>'requireRegistration')::boolean, g->>'actionId',
                    (g->>'delta')::bigint, g->>'idempotencyKey', g->>'ticketJti', g->>'source', p_subject) r;
    IF g->>'region' IS NOT NULL THEN
      UPDATE users u SET region = g->>'region' WHERE u.user_id = g->>'userId' AND u.region IS DISTINCT FROM g->>'region';
    END IF;
    i := i + 1;
  END LOOP;
END
$fn$`.execute(db);
  await sql`ALTER TABLE outbox DROP COLUMN IF EXISTS trace_context`.execute(db);
}

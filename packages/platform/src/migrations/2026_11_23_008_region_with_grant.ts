import { sql, type Kysely } from "kysely";
import { grantBatchWithTraceContext } from "./2026_11_23_007_outbox_trace_context.js";

// A token's region claim moves the user's profile only with a grant, in its
// transaction. It used to move it for a refused grant too: the profile then
// named a region the boards in Redis did not show (no event carried it), so
// reads answered from PostgreSQL during a Redis outage disagreed with them
// until the user's next grant.
export async function up(db: Kysely<unknown>): Promise<void> {
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
    IF r.outcome = 'granted' THEN
      IF g ? 'traceContext' THEN
        UPDATE outbox o SET trace_context = g->'traceContext' WHERE o.ledger_id = r.ledger_id;
      END IF;
      IF g->>'region' IS NOT NULL THEN
        UPDATE users u SET region = g->>'region' WHERE u.user_id = g->>'userId' AND u.region IS DISTINCT FROM g->>'region';
      END IF;
    END IF;
    RETURN QUERY SELECT i, r.outcome, r.ledger_id, r.request_id, r.points, r.new_score, r.version, r.detail;
    i := i + 1;
  END LOOP;
END
$fn$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await grantBatchWithTraceContext(db);
}

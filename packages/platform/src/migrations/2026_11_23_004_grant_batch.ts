import { sql, type Kysely } from "kysely";

// Group commit: grants that arrive while others are being written are sent
// together and committed in one transaction, one round trip and one WAL
// flush for the lot. Each grant still runs sb_grant() (its own checks and
// subtransaction for unique violations), in the order given.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
CREATE FUNCTION sb_grant_batch(p_grants jsonb, p_subject text)
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
    i := i + 1;
  END LOOP;
END
$fn$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP FUNCTION IF EXISTS sb_grant_batch`.execute(db);
}

import { sql, type Kysely } from "kysely";

// Regional boards (seed 000: leaderboard:us, leaderboard:eu). A user's region
// is their profile's, updated from the token's `region` claim when a grant
// carries one; the relay puts it on the event, and ranking counts the grant
// on the global board and on "region:<region>".
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("users").addColumn("region", "text").execute();
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
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("users").dropColumn("region").execute();
}

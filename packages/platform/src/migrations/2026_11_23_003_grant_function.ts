import { sql, type Kysely } from "kysely";

// One grant = one statement. On these machines every PostgreSQL round trip
// costs more than the work it carries (a grant used to be nine), so the whole
// write path runs server-side in sb_grant(), in the statement's own
// transaction: idempotent replay, catalog lookup, registration and role
// checks, the ledger row, the new total, the outbox row and the audit row.
//
// The outbox row now holds only the ledger id; the relay builds the event
// from the ledger when it publishes, so the event never disagrees with it.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE ledger ADD COLUMN version bigint`.execute(db);
  await sql`UPDATE ledger l SET version = s.version FROM scores s WHERE s.user_id = l.user_id AND l.version IS NULL`.execute(db);
  await sql`ALTER TABLE outbox ALTER COLUMN payload DROP NOT NULL`.execute(db);

  await sql`
CREATE FUNCTION sb_grant(
  p_user_id text, p_username text, p_require_registration boolean,
  p_action_id text, p_delta bigint, p_idempotency_key text, p_ticket_jti text, p_source text, p_subject text
) RETURNS TABLE (outcome text, ledger_id bigint, request_id uuid, points bigint, new_score bigint, version bigint, detail text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  v_operation text := CASE WHEN p_action_id IS NULL THEN 'add_score' ELSE 'submit_action' END;
  v_points bigint := p_delta;
  v_requires_ticket boolean;
  v_role text;
  v_current bigint;
  v_row ledger%ROWTYPE;
  v_score bigint;
  v_version bigint;
BEGIN
  -- A retry with a known key answers as the first time did.
  IF p_idempotency_key IS NOT NULL THEN
    SELECT * INTO v_row FROM ledger l WHERE l.user_id = p_user_id AND l.idempotency_key = p_idempotency_key;
    IF FOUND THEN
      IF v_row.action_id IS NOT DISTINCT FROM p_action_id AND (p_action_id IS NOT NULL OR v_row.points = p_delta) THEN
        RETURN QUERY SELECT 'replayed', v_row.id, v_row.request_id, v_row.points::bigint, v_row.new_score, v_row.version, NULL::text;
      ELSE
        RETURN QUERY SELECT 'idempotency_mismatch', NULL::bigint, NULL::uuid, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text;
      END IF;
      RETURN;
    END IF;
  END IF;

  IF p_action_id IS NOT NULL THEN
    SELECT a.points, a.requires_ticket INTO v_points, v_requires_ticket FROM actions a WHERE a.action_id = p_action_id;
    IF NOT FOUND THEN
      outcome := 'unknown_action';
    ELSIF v_requires_ticket AND p_ticket_jti IS NULL THEN
      outcome := 'ticket_required';
    END IF;
  END IF;

  IF outcome IS NULL THEN
    IF NOT p_require_registration THEN
      INSERT INTO users (user_id, username) VALUES (p_user_id, p_username) ON CONFLICT (user_id) DO NOTHING;
    END IF;
    SELECT u.role INTO v_role FROM users u WHERE u.user_id = p_user_id;
    IF NOT FOUND THEN
      outcome := 'unregistered';
    ELSIF v_role NOT IN ('player', 'admin') THEN
      outcome := 'not_a_player'; detail := v_role;
    END IF;
  END IF;

  IF outcome IS NULL AND v_points < 0 THEN
    -- Lock the total so concurrent decrements cannot together go below zero.
    SELECT s.score INTO v_current FROM scores s WHERE s.user_id = p_user_id FOR UPDATE;
    IF coalesce(v_current, 0) + v_points < 0 THEN
      outcome := 'below_zero'; detail := coalesce(v_current, 0)::text;
    END IF;
  END IF;

  IF outcome IS NULL THEN
    BEGIN
      INSERT INTO ledger AS l (user_id, action_id, kind, points, idempotency_key, ticket_jti, source)
      VALUES (p_user_id, p_action_id, CASE WHEN p_action_id IS NULL THEN 'increment' ELSE 'action' END,
              v_points, p_idempotency_key, CASE WHEN v_requires_ticket THEN p_ticket_jti END, p_source)
      ON CONFLICT (user_id, action_id) DO NOTHING
      RETURNING * INTO v_row;
      IF v_row.id IS NULL THEN
        outcome := 'already_granted';
      END IF;
    EXCEPTION WHEN unique_violation THEN
      IF SQLERRM LIKE '%ledger_ticket_jti_key%' THEN
        outcome := 'ticket_used';
      ELSE
        -- A concurrent retry with the same key committed first.
        SELECT * INTO v_row FROM ledger l WHERE l.user_id = p_user_id AND l.idempotency_key = p_idempotency_key;
        RETURN QUERY SELECT 'replayed', v_row.id, v_row.request_id, v_row.points::bigint, v_row.new_score, v_row.version, NULL::text;
        RETURN;
      END IF;
    END;
  END IF;

  IF outcome IS NOT NULL THEN
    INSERT INTO audit_log (user_id, operation, outcome, reason, detail)
    VALUES (p_user_id, v_operation, 'refused', outcome,
            jsonb_build_object('source', p_source, 'actionId', p_action_id, 'delta', p_delta, 'detail', detail));
    RETURN QUERY SELECT outcome, NULL::bigint, NULL::uuid, NULL::bigint, NULL::bigint, NULL::bigint, detail;
    RETURN;
  END IF;

  INSERT INTO scores AS s (user_id, score, version, updated_at)
  VALUES (p_user_id, v_points, 1, v_row.created_at)
  ON CONFLICT (user_id) DO UPDATE
    SET score = s.score + excluded.score, version = s.version + 1, updated_at = excluded.updated_at
  RETURNING s.score, s.version INTO v_score, v_version;
  UPDATE ledger l SET new_score = v_score, version = v_version WHERE l.id = v_row.id;
  INSERT INTO outbox (ledger_id, subject) VALUES (v_row.id, p_subject);
  INSERT INTO audit_log (user_id, operation, outcome, reason, request_id, detail)
  VALUES (p_user_id, v_operation, 'granted', 'granted', v_row.request_id,
          jsonb_build_object('source', p_source, 'actionId', p_action_id, 'points', v_points, 'newScore', v_score));
  RETURN QUERY SELECT 'granted', v_row.id, v_row.request_id, v_points, v_score, v_version, NULL::text;
END
$fn$`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP FUNCTION IF EXISTS sb_grant`.execute(db);
  await sql`DELETE FROM outbox WHERE payload IS NULL`.execute(db);
  await sql`ALTER TABLE outbox ALTER COLUMN payload SET NOT NULL`.execute(db);
  await sql`ALTER TABLE ledger DROP COLUMN version`.execute(db);
}

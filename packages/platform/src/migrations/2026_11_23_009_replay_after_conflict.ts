import { sql, type Kysely } from "kysely";

// Parallel retries (one Idempotency-Key, several concurrent grant batches)
// could answer "already granted": each copy looked its key up before the
// first copy committed, then the ledger insert waited for that commit and
// hit UNIQUE (user_id, action_id), which ON CONFLICT turned into
// "already_granted". Now a conflict looks the key up again (the statement
// after the wait sees the commit) and answers as the first grant did; the
// answer to a known key is one function, sb_grant_replay(), used by every path.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
CREATE OR REPLACE FUNCTION sb_grant_replay(p_user_id text, p_idempotency_key text, p_action_id text, p_delta bigint)
RETURNS TABLE (outcome text, ledger_id bigint, request_id uuid, points bigint, new_score bigint, version bigint, detail text)
LANGUAGE sql AS $fn$
  SELECT CASE WHEN m.same THEN 'replayed' ELSE 'idempotency_mismatch' END,
         CASE WHEN m.same THEN l.id END, CASE WHEN m.same THEN l.request_id END, CASE WHEN m.same THEN l.points::bigint END,
         CASE WHEN m.same THEN l.new_score END, CASE WHEN m.same THEN l.version END, NULL::text
  FROM ledger l
  CROSS JOIN LATERAL (SELECT l.action_id IS NOT DISTINCT FROM p_action_id AND (p_action_id IS NOT NULL OR l.points = p_delta) AS same) m
  WHERE l.user_id = p_user_id AND l.idempotency_key = p_idempotency_key
$fn$`.execute(db);
  await sql`
CREATE OR REPLACE FUNCTION sb_grant(
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
    RETURN QUERY SELECT * FROM sb_grant_replay(p_user_id, p_idempotency_key, p_action_id, p_delta);
    IF FOUND THEN RETURN; END IF;
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
        -- The pair is taken. If a concurrent copy of this request took it (the
        -- insert waited for that transaction, which committed after the look
        -- above), this is a retry: answer as that grant did, never "already
        -- granted". This statement sees the commit the insert waited for.
        IF p_idempotency_key IS NOT NULL THEN
          RETURN QUERY SELECT * FROM sb_grant_replay(p_user_id, p_idempotency_key, p_action_id, p_delta);
          IF FOUND THEN RETURN; END IF;
        END IF;
        outcome := 'already_granted';
      END IF;
    EXCEPTION WHEN unique_violation THEN
      IF SQLERRM LIKE '%ledger_ticket_jti_key%' THEN
        outcome := 'ticket_used';
      ELSE
        -- A concurrent request with the same key (an increment, or another
        -- action) committed first: a retry, or a reused key.
        RETURN QUERY SELECT * FROM sb_grant_replay(p_user_id, p_idempotency_key, p_action_id, p_delta);
        IF FOUND THEN RETURN; END IF;
        RAISE;
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

export async function down(): Promise<void> {
  // sb_grant() keeps this definition on the way down: the one before it
  // answered parallel retries "already granted".
}

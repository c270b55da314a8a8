import { sql, type Kysely } from "kysely";
import { applyFunctionRules } from "./function-rules.js";

// The grant's rules, in one place: the one current definition of the
// functions a grant runs. They are not altered step by step like tables but
// replaced whole, so no dated migration defines them; every migration run
// (score's start, the migrate Job, the test harness) re-applies this file
// after the schema migrations (see schema.ts). Edit it in place, bump
// GRANT_RULES_REVISION, and add a dated migration only for what they need
// from the tables. A changed RETURNS TABLE needs a DROP FUNCTION here first:
// CREATE OR REPLACE cannot change a function's result type.
//
// One grant = one statement. On these machines every PostgreSQL round trip
// costs more than the work it carries (a grant used to be nine), so the whole
// write path runs server-side in sb_grant(), in the statement's own
// transaction: idempotent replay, catalog lookup, registration and role
// checks, the ledger row, the new total, the outbox row and the audit row.
// The outbox row holds only the ledger id (and the grant's trace context); the
// relay builds the event from the ledger when it publishes. Period totals are
// the ledger trigger's (migration 006), not the grant's.

/**
 * Raised with every change below. A database whose functions carry a higher
 * revision was migrated by a newer build: an older one (a pod of the previous
 * release restarting during a rollout) leaves them alone rather than putting
 * older rules back.
 */
export const GRANT_RULES_REVISION = 3;

/**
 * A known Idempotency-Key answers as the first grant did: "replayed" with its
 * result when the request is the same (same action, or the same increment),
 * else "idempotency_mismatch". No row when the key is unknown.
 */
const grantReplay = sql`
CREATE OR REPLACE FUNCTION sb_grant_replay(p_user_id text, p_idempotency_key text, p_action_id text, p_delta bigint)
RETURNS TABLE (outcome text, ledger_id bigint, request_id uuid, points bigint, new_score bigint, version bigint, detail text)
LANGUAGE sql AS $fn$
  SELECT CASE WHEN m.same THEN 'replayed' ELSE 'idempotency_mismatch' END,
         CASE WHEN m.same THEN l.id END, CASE WHEN m.same THEN l.request_id END, CASE WHEN m.same THEN l.points::bigint END,
         CASE WHEN m.same THEN l.new_score END, CASE WHEN m.same THEN l.version END, NULL::text
  FROM ledger l
  CROSS JOIN LATERAL (SELECT l.action_id IS NOT DISTINCT FROM p_action_id AND (p_action_id IS NOT NULL OR l.points = p_delta) AS same) m
  WHERE l.user_id = p_user_id AND l.idempotency_key = p_idempotency_key
$fn$`;

/**
 * Who may score, for grants and board submissions alike: without
 * REQUIRE_REGISTRATION a first write registers the user; then the user must
 * exist with the role player or admin. No row when they may; else the
 * refusal ("unregistered", "not_a_player") and its detail (the role).
 */
const scorerRefusal = sql`
CREATE OR REPLACE FUNCTION sb_scorer_refusal(p_user_id text, p_username text, p_require_registration boolean)
RETURNS TABLE (refusal text, refusal_detail text)
LANGUAGE plpgsql AS $fn$
DECLARE
  v_role text;
BEGIN
  IF NOT p_require_registration THEN
    INSERT INTO users (user_id, username) VALUES (p_user_id, p_username) ON CONFLICT (user_id) DO NOTHING;
  END IF;
  SELECT u.role INTO v_role FROM users u WHERE u.user_id = p_user_id;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'unregistered'::text, NULL::text;
  ELSIF v_role NOT IN ('player', 'admin') THEN
    RETURN QUERY SELECT 'not_a_player'::text, v_role;
  END IF;
END
$fn$`;

/**
 * One grant. Parallel copies of one request (one key, several concurrent
 * batches) all answer as the first: a copy whose ledger insert waited for the
 * first and then conflicted looks its key up again instead of answering
 * "already granted".
 */
const grant = sql`
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
    SELECT c.refusal, c.refusal_detail INTO outcome, detail FROM sb_scorer_refusal(p_user_id, p_username, p_require_registration) c;
  END IF;

  IF outcome IS NULL AND v_points < 0 THEN
    -- Lock the total so concurrent decrements cannot together go below zero.
    SELECT s.score INTO v_current FROM scores s WHERE s.user_id = p_user_id FOR UPDATE;
    IF coalesce(v_current, 0) + v_points < 0 THEN
      outcome := 'below_zero'; detail := coalesce(v_current, 0)::text;
    END IF;
  END IF;

  IF outcome IS NULL THEN
    -- The new total first, then the ledger row that records it: written once,
    -- complete (an insert then an update of new_score and version was a
    -- second heap tuple and WAL record per grant). A grant that turns out not
    -- to happen rolls its total back with this block's subtransaction.
    BEGIN
      INSERT INTO scores AS s (user_id, score, version, updated_at)
      VALUES (p_user_id, v_points, 1, now())
      ON CONFLICT (user_id) DO UPDATE
        SET score = s.score + excluded.score, version = s.version + 1, updated_at = excluded.updated_at
      RETURNING s.score, s.version INTO v_score, v_version;
      INSERT INTO ledger AS l (user_id, action_id, kind, points, idempotency_key, ticket_jti, source, new_score, version)
      VALUES (p_user_id, p_action_id, CASE WHEN p_action_id IS NULL THEN 'increment' ELSE 'action' END,
              v_points, p_idempotency_key, CASE WHEN v_requires_ticket THEN p_ticket_jti END, p_source, v_score, v_version)
      ON CONFLICT (user_id, action_id) DO NOTHING
      RETURNING * INTO v_row;
      IF v_row.id IS NULL THEN
        RAISE EXCEPTION 'pair taken' USING ERRCODE = 'SBPTK';
      END IF;
    EXCEPTION
      WHEN SQLSTATE 'SBPTK' THEN
        -- The pair is taken. If a concurrent copy of this request took it (the
        -- total's row lock waited for that transaction, which committed after
        -- the look above), this is a retry: answer as that grant did, never
        -- "already granted". This statement sees the commit it waited for.
        IF p_idempotency_key IS NOT NULL THEN
          RETURN QUERY SELECT * FROM sb_grant_replay(p_user_id, p_idempotency_key, p_action_id, p_delta);
          IF FOUND THEN RETURN; END IF;
        END IF;
        outcome := 'already_granted';
      WHEN unique_violation THEN
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

  INSERT INTO outbox (ledger_id, subject) VALUES (v_row.id, p_subject);
  INSERT INTO audit_log (user_id, operation, outcome, reason, request_id, detail)
  VALUES (p_user_id, v_operation, 'granted', 'granted', v_row.request_id,
          jsonb_build_object('source', p_source, 'actionId', p_action_id, 'points', v_points, 'newScore', v_score));
  RETURN QUERY SELECT 'granted', v_row.id, v_row.request_id, v_points, v_score, v_version, NULL::text;
END
$fn$`;

/**
 * Group commit: grants that arrive while others are being written are sent
 * together and committed in one transaction, one round trip and one WAL flush
 * for the lot. Each runs sb_grant() (its own checks and subtransaction for
 * unique violations), in the order given. Only a grant made stores its trace
 * context with its outbox row and moves the user's profile to the token's
 * region: a refused one never names a region no event carried.
 */
const grantBatch = sql`
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
$fn$`;

/**
 * Applies the current definitions unless a newer build's are in place; in the
 * caller's transaction, which holds the migration lock. Answers whether it did.
 */
// biome-ignore lint/suspicious/noExplicitAny: any database score's migrations made
export function applyGrantFunctions(trx: Kysely<any>): Promise<boolean> {
  return applyFunctionRules(trx, {
    label: "grant rules",
    revision: GRANT_RULES_REVISION,
    marker: "sb_grant_batch(jsonb, text)",
    definitions: [scorerRefusal, grantReplay, grant, grantBatch],
  });
}

import { sql, type Kysely } from "kysely";
import { applyFunctionRules } from "../function-rules.js";

// A submission's rules, in one place: the one current definition of the
// functions SubmitScore runs, replaced whole on every migration run like the
// grant's (grant-functions.ts, schema.ts). Edit in place and bump
// BOARD_RULES_REVISION; a changed RETURNS TABLE needs a DROP FUNCTION first.
//
// One submission = one statement, in its own transaction: idempotent replay,
// the definition as it is now, registration and role checks, the entry's row
// lock, the operator, the ledger row, the entry, the outbox row and the audit
// row. TypeScript passes the season and the time (its clock), so a test can
// cross a season boundary without waiting.
//
// What the ledger row of a submission holds (kind 'board', points 0):
// board_score, subscore and metadata as submitted; new_score and version the
// entry's after it; board_changed whether it changed the entry; created_at
// the submission's time. A submission changes the entry when it creates it or
// moves its score or subscore; then the entry takes the submission's subscore
// and metadata and reached_at = created_at. So the row that made an entry's
// version describes that version whole, and only such rows go to the outbox:
// a submission that changed nothing publishes nothing.

export const BOARD_RULES_REVISION = 2;

const RESULT = `outcome text, ledger_id bigint, request_id uuid, season text, score bigint, subscore bigint,
  metadata text, reached_at timestamptz, version bigint, changed boolean, detail text`;

/**
 * A known Idempotency-Key answers as the first submission did: "replayed"
 * with the entry after it when the request is the same (board, score and
 * subscore), else "idempotency_mismatch" (also for a key a grant used).
 */
const boardReplay = sql`
CREATE OR REPLACE FUNCTION sb_board_replay(p_user_id text, p_idempotency_key text, p_board_id text, p_score bigint, p_subscore bigint)
RETURNS TABLE (${sql.raw(RESULT)})
LANGUAGE sql AS $fn$
  SELECT CASE WHEN m.same THEN 'replayed' ELSE 'idempotency_mismatch' END,
         CASE WHEN m.same THEN l.id END, CASE WHEN m.same THEN l.request_id END, CASE WHEN m.same THEN l.season END,
         CASE WHEN m.same THEN l.new_score END, e.subscore, e.metadata::text, e.reached_at,
         CASE WHEN m.same THEN l.version END, CASE WHEN m.same THEN l.board_changed END, NULL::text
  FROM ledger l
  CROSS JOIN LATERAL (SELECT coalesce(l.kind = 'board' AND l.board_id = p_board_id AND l.board_score = p_score AND l.subscore = p_subscore, false) AS same) m
  -- The entry as the first submission left it: the submission that made
  -- that version (the first itself when it changed the entry) holds it.
  LEFT JOIN LATERAL (
    SELECT c.subscore, c.metadata, c.created_at AS reached_at FROM ledger c
    WHERE m.same AND c.user_id = l.user_id AND c.board_id = l.board_id AND c.season = l.season AND c.version = l.version AND c.board_changed
    LIMIT 1) e ON true
  WHERE l.user_id = p_user_id AND l.idempotency_key = p_idempotency_key
$fn$`;

/**
 * One submission. Parallel copies of one request all answer as the first: a
 * copy that waited for the first (on the entry's row lock, or on the new
 * entry's key) and then conflicts looks again and finds it.
 */
const boardSubmit = sql`
CREATE OR REPLACE FUNCTION sb_board_submit(
  p_user_id text, p_username text, p_require_registration boolean, p_board_id text, p_revision bigint, p_season text,
  p_score bigint, p_subscore bigint, p_metadata jsonb, p_idempotency_key text, p_ticket_jti text, p_source text,
  p_subject text, p_at timestamptz, p_trace_context jsonb
) RETURNS TABLE (${sql.raw(RESULT)})
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
  v_board board_definitions%ROWTYPE;
  v_entry board_entries%ROWTYPE;
  v_found boolean;
  v_score bigint;
  v_subscore bigint;
  v_changed boolean;
  v_version bigint;
  v_row ledger%ROWTYPE;
  v_constraint text;
  v_attempt int := 0;
  v_min bigint;
  v_max bigint;
BEGIN
  LOOP
    v_attempt := v_attempt + 1;
    IF p_idempotency_key IS NOT NULL THEN
      RETURN QUERY SELECT * FROM sb_board_replay(p_user_id, p_idempotency_key, p_board_id, p_score, p_subscore);
      IF FOUND THEN RETURN; END IF;
    END IF;

    -- The definition as it is now: the caller computed the season and checked
    -- scopes, ticket and metadata against the revision it names.
    SELECT * INTO v_board FROM board_definitions b WHERE b.board_id = p_board_id;
    IF NOT FOUND THEN
      outcome := 'unknown_board';
    ELSIF v_board.builtin THEN
      outcome := 'builtin';
    ELSIF v_board.archived_at IS NOT NULL THEN
      outcome := 'archived';
    ELSIF v_board.revision <> p_revision THEN
      outcome := 'definition_changed'; detail := v_board.revision::text;
    ELSIF v_board.requires_ticket AND p_ticket_jti IS NULL THEN
      outcome := 'ticket_required';
    END IF;
    v_min := greatest(coalesce(v_board.min_score, -9007199254740991), -9007199254740991);
    v_max := least(coalesce(v_board.max_score, 9007199254740991), 9007199254740991);

    IF outcome IS NULL THEN
      -- Who may score: the grant's rule (grant-functions.ts).
      SELECT c.refusal, c.refusal_detail INTO outcome, detail FROM sb_scorer_refusal(p_user_id, p_username, p_require_registration) c;
    END IF;

    -- best and set keep the submission itself: it must be within bounds.
    IF outcome IS NULL AND v_board.operator IN ('best', 'set') AND p_score NOT BETWEEN v_min AND v_max THEN
      outcome := 'out_of_bounds'; detail := p_score::text;
    END IF;
    EXIT WHEN outcome IS NOT NULL;

    SELECT * INTO v_entry FROM board_entries e
    WHERE e.board_id = p_board_id AND e.season = p_season AND e.user_id = p_user_id FOR UPDATE;
    v_found := FOUND;
    v_subscore := p_subscore;
    CASE v_board.operator
      WHEN 'incr' THEN v_score := coalesce(v_entry.score, 0) + p_score;
      WHEN 'decr' THEN v_score := coalesce(v_entry.score, 0) - p_score;
      WHEN 'set' THEN v_score := p_score;
      ELSE -- best: the better by the board's order; a worse (or equal) one changes nothing
        v_score := p_score;
        -- (In parentheses: PL/pgSQL ends an IF condition at the first THEN it sees.)
        IF v_found AND NOT (CASE v_board.sort_order
            WHEN 'desc' THEN p_score > v_entry.score OR (v_board.tie_rule = 'subscore' AND p_score = v_entry.score AND p_subscore > v_entry.subscore)
            ELSE p_score < v_entry.score OR (v_board.tie_rule = 'subscore' AND p_score = v_entry.score AND p_subscore < v_entry.subscore)
          END) THEN
          v_score := v_entry.score; v_subscore := v_entry.subscore;
        END IF;
    END CASE;
    -- incr and decr keep a result: it must be within bounds.
    IF v_score NOT BETWEEN v_min AND v_max THEN
      outcome := 'out_of_bounds'; detail := v_score::text;
      EXIT;
    END IF;
    v_changed := NOT v_found OR v_score <> v_entry.score OR v_subscore <> v_entry.subscore;
    v_version := CASE WHEN v_changed THEN coalesce(v_entry.version, 0) + 1 ELSE v_entry.version END;

    BEGIN
      IF NOT v_found THEN
        INSERT INTO board_entries (board_id, season, user_id, score, subscore, metadata, reached_at, version)
        VALUES (p_board_id, p_season, p_user_id, v_score, v_subscore, p_metadata, p_at, v_version);
      ELSIF v_changed THEN
        UPDATE board_entries e SET score = v_score, subscore = v_subscore, metadata = p_metadata, reached_at = p_at, version = v_version
        WHERE e.board_id = p_board_id AND e.season = p_season AND e.user_id = p_user_id;
      END IF;
      INSERT INTO ledger (user_id, kind, points, idempotency_key, ticket_jti, source, new_score, version, created_at,
                          board_id, season, board_score, subscore, metadata, board_changed)
      VALUES (p_user_id, 'board', 0, p_idempotency_key, p_ticket_jti, p_source, v_score, v_version, p_at,
              p_board_id, p_season, p_score, p_subscore, p_metadata, v_changed)
      RETURNING * INTO v_row;
    EXCEPTION WHEN unique_violation THEN
      -- Rolls the entry back with this block's subtransaction.
      GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
      IF v_constraint = 'ledger_ticket_jti_key' THEN
        outcome := 'ticket_used';
      ELSIF v_attempt >= 3 OR v_constraint NOT IN ('board_entries_pkey', 'ledger_user_idempotency_key') THEN
        RAISE;
      END IF;
      -- Otherwise a concurrent submission committed first (the user's first
      -- on this board and season, or a copy of this request): look again.
    END;
    EXIT WHEN outcome IS NOT NULL OR v_row.id IS NOT NULL;
  END LOOP;

  IF outcome IS NOT NULL THEN
    INSERT INTO audit_log (user_id, operation, outcome, reason, detail)
    VALUES (p_user_id, 'submit_score', 'refused', outcome,
            jsonb_build_object('source', p_source, 'boardId', p_board_id, 'score', p_score, 'detail', detail));
    RETURN QUERY SELECT outcome, NULL::bigint, NULL::uuid, NULL::text, NULL::bigint, NULL::bigint, NULL::text,
                        NULL::timestamptz, NULL::bigint, NULL::boolean, detail;
    RETURN;
  END IF;

  IF v_changed THEN
    INSERT INTO outbox (ledger_id, subject, trace_context) VALUES (v_row.id, p_subject, p_trace_context);
  END IF;
  INSERT INTO audit_log (user_id, operation, outcome, reason, request_id, detail)
  VALUES (p_user_id, 'submit_score', 'granted', CASE WHEN v_changed THEN 'changed' ELSE 'unchanged' END, v_row.request_id,
          jsonb_build_object('source', p_source, 'boardId', p_board_id, 'season', p_season, 'score', p_score, 'newScore', v_score));
  RETURN QUERY SELECT 'submitted', v_row.id, v_row.request_id, p_season, v_score, v_subscore,
                      CASE WHEN v_changed THEN p_metadata ELSE v_entry.metadata END::text,
                      CASE WHEN v_changed THEN p_at ELSE v_entry.reached_at END, v_version, v_changed, NULL::text;
END
$fn$`;

/** Applies the current definitions unless a newer build's are in place (see function-rules.ts). */
// biome-ignore lint/suspicious/noExplicitAny: any database score's migrations made
export function applyBoardFunctions(trx: Kysely<any>): Promise<boolean> {
  return applyFunctionRules(trx, {
    label: "board rules",
    revision: BOARD_RULES_REVISION,
    marker: "sb_board_submit(text, text, boolean, text, bigint, text, bigint, bigint, jsonb, text, text, text, text, timestamptz, jsonb)",
    definitions: [boardReplay, boardSubmit],
  });
}

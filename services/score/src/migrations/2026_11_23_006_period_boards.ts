import { sql, type Kysely } from "kysely";

// Time-windowed boards (daily, weekly, monthly in UTC). Every ledger row
// counts on the boards of the day, ISO week and month it was written in:
// period_scores holds each user's total per period board, and the ledger row
// keeps the period totals it produced, so the relay can publish them with the
// event exactly as of that grant (the same per-user version orders them).
//
// A trigger on the ledger, not code in sb_grant: a ledger insert is where
// points are granted, whichever path does it, and a refused or conflicting
// insert (ON CONFLICT DO NOTHING, a rolled-back subtransaction) never fires
// an AFTER INSERT trigger, so a period total cannot count a grant that did
// not happen. Board names must match packages/platform/src/periods.ts.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
CREATE TABLE period_scores (
  board text NOT NULL,
  user_id text NOT NULL REFERENCES users (user_id),
  score bigint NOT NULL,
  reached_at timestamptz NOT NULL,
  PRIMARY KEY (board, user_id)
)`.execute(db);
  // The PostgreSQL fallback pages a board in the same order as Redis.
  await sql`CREATE INDEX period_scores_rank ON period_scores (board, score DESC, reached_at)`.execute(db);
  await sql`ALTER TABLE ledger ADD COLUMN period_scores jsonb`.execute(db);

  await sql`
CREATE FUNCTION sb_count_periods() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  v_at timestamp := NEW.created_at AT TIME ZONE 'UTC';
  v_board text;
  v_score bigint;
  v_totals jsonb := '{}'::jsonb;
BEGIN
  FOREACH v_board IN ARRAY ARRAY[
    'daily:' || to_char(v_at, 'YYYY-MM-DD'),
    'weekly:' || to_char(v_at, 'IYYY-"w"IW'),
    'monthly:' || to_char(v_at, 'YYYY-MM')
  ] LOOP
    INSERT INTO period_scores AS p (board, user_id, score, reached_at)
    VALUES (v_board, NEW.user_id, NEW.points, NEW.created_at)
    ON CONFLICT (board, user_id) DO UPDATE
      SET score = p.score + excluded.score, reached_at = excluded.reached_at
    RETURNING p.score INTO v_score;
    v_totals := v_totals || jsonb_build_object(v_board, v_score);
  END LOOP;
  UPDATE ledger SET period_scores = v_totals WHERE id = NEW.id;
  RETURN NULL;
END
$fn$`.execute(db);
  await sql`CREATE TRIGGER ledger_counts_periods AFTER INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION sb_count_periods()`.execute(db);

  // Grants made before this migration count on their periods too.
  await sql`
INSERT INTO period_scores (board, user_id, score, reached_at)
SELECT b.board, l.user_id, sum(l.points), max(l.created_at)
FROM ledger l
CROSS JOIN LATERAL (VALUES
  ('daily:' || to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')),
  ('weekly:' || to_char(l.created_at AT TIME ZONE 'UTC', 'IYYY-"w"IW')),
  ('monthly:' || to_char(l.created_at AT TIME ZONE 'UTC', 'YYYY-MM'))
) AS b (board)
GROUP BY b.board, l.user_id`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TRIGGER IF EXISTS ledger_counts_periods ON ledger`.execute(db);
  await sql`DROP FUNCTION IF EXISTS sb_count_periods()`.execute(db);
  await sql`ALTER TABLE ledger DROP COLUMN IF EXISTS period_scores`.execute(db);
  await sql`DROP TABLE IF EXISTS period_scores`.execute(db);
}

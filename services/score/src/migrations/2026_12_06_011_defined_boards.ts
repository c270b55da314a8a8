import { sql, type Kysely } from "kysely";

// Boards as a platform (issue 12): board definitions, each board's entries
// per season, and submissions recorded in the ledger like grants.
//
// - board_definitions: one row per board. The boards the seed endpoints
//   serve are rows too (builtin): "global", "region" (every region:<r>),
//   "daily", "weekly" and "monthly"; grants feed them, their rules are fixed.
// - board_entries: a user's standing on a defined board in one season,
//   absolute and versioned per (board, season, user). Past seasons keep
//   theirs: a season is a key, never a reset.
// - ledger rows of kind 'board' record each submission (the submitted score
//   in board_score, the entry after it in new_score/version). They carry no
//   points towards totals or period boards: the period trigger skips them.
// biome-ignore lint/suspicious/noExplicitAny: any database score's migrations made
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
CREATE TABLE board_definitions (
  board_id text PRIMARY KEY CHECK (board_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  title text NOT NULL CHECK (length(title) <= 200),
  sort_order text NOT NULL CHECK (sort_order IN ('desc', 'asc')),
  operator text NOT NULL CHECK (operator IN ('incr', 'decr', 'best', 'set')),
  reset_schedule text NOT NULL DEFAULT 'none',
  time_zone text NOT NULL DEFAULT 'UTC',
  tie_rule text NOT NULL CHECK (tie_rule IN ('first', 'subscore')),
  min_score bigint CHECK (min_score BETWEEN -9007199254740991 AND 9007199254740991),
  max_score bigint CHECK (max_score BETWEEN -9007199254740991 AND 9007199254740991),
  write_scopes text[] NOT NULL DEFAULT '{}',
  requires_ticket boolean NOT NULL DEFAULT false,
  metadata_max_bytes integer NOT NULL DEFAULT 0 CHECK (metadata_max_bytes BETWEEN 0 AND 4096),
  retained_seasons integer NOT NULL DEFAULT 0 CHECK (retained_seasons BETWEEN 0 AND 1000),
  builtin boolean NOT NULL DEFAULT false,
  archived_at timestamptz,
  revision bigint NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (min_score IS NULL OR max_score IS NULL OR min_score <= max_score)
)`.execute(db);
  // The seed boards as definitions. Their period retention is the
  // deployment's (DAILY/WEEKLY/MONTHLY_BOARD_RETENTION), so it is not stored.
  await sql`
INSERT INTO board_definitions (board_id, title, sort_order, operator, reset_schedule, tie_rule, builtin) VALUES
  ('global', 'Global', 'desc', 'incr', 'none', 'first', true),
  ('region', 'Region (region:<r>)', 'desc', 'incr', 'none', 'first', true),
  ('daily', 'Today (UTC)', 'desc', 'incr', 'daily', 'first', true),
  ('weekly', 'This ISO week (UTC)', 'desc', 'incr', 'weekly', 'first', true),
  ('monthly', 'This month (UTC)', 'desc', 'incr', 'monthly', 'first', true)`.execute(db);

  await sql`
CREATE TABLE board_entries (
  board_id text NOT NULL REFERENCES board_definitions (board_id),
  season text NOT NULL,
  user_id text NOT NULL REFERENCES users (user_id),
  score bigint NOT NULL,
  subscore bigint NOT NULL DEFAULT 0,
  metadata jsonb,
  reached_at timestamptz NOT NULL,
  version bigint NOT NULL,
  PRIMARY KEY (board_id, season, user_id)
)`.execute(db);
  // Rank order of either kind of board, for reads served from PostgreSQL
  // (past seasons, Redis down, rebuilds).
  await sql`CREATE INDEX board_entries_desc ON board_entries (board_id, season, score DESC, subscore DESC, reached_at)`.execute(db);
  await sql`CREATE INDEX board_entries_asc ON board_entries (board_id, season, score, subscore, reached_at)`.execute(db);

  await sql`ALTER TABLE ledger DROP CONSTRAINT IF EXISTS ledger_kind_check`.execute(db);
  await sql`ALTER TABLE ledger ADD CONSTRAINT ledger_kind_check CHECK (kind IN ('action', 'increment', 'board'))`.execute(db);
  await sql`
ALTER TABLE ledger
  ADD COLUMN board_id text REFERENCES board_definitions (board_id),
  ADD COLUMN season text,
  ADD COLUMN board_score bigint,
  ADD COLUMN subscore bigint,
  ADD COLUMN metadata jsonb,
  ADD COLUMN board_changed boolean,
  ADD CONSTRAINT ledger_kind_board CHECK ((kind = 'board') = (board_id IS NOT NULL AND season IS NOT NULL AND board_score IS NOT NULL))`.execute(db);

  // Submissions count on their board only, never on the period boards.
  await sql`DROP TRIGGER ledger_counts_periods ON ledger`.execute(db);
  await sql`CREATE TRIGGER ledger_counts_periods AFTER INSERT ON ledger FOR EACH ROW WHEN (NEW.board_id IS NULL) EXECUTE FUNCTION sb_count_periods()`.execute(
    db,
  );
}

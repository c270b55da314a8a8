import { sql, type RawBuilder } from "kysely";
import type { Db } from "@scoreboard/platform/db";
import { parseMember, type BoardShape, type DefinedEntry, type Position, type RankedDefinedEntry } from "./entries.js";
import type { EntryPage } from "./redis-store.js";

/** A board's definition, as reads need it. */
export interface BoardRules extends BoardShape {
  title: string;
  resetSchedule: string;
  timeZone: string;
  retainedSeasons: number;
  builtin: boolean;
  archived: boolean;
}

/** What ranking reads of defined boards from PostgreSQL, the source of truth. */
export interface DefinedBoardSource {
  /** A board's definition; undefined when there is none. */
  board(boardId: string): Promise<BoardRules | undefined>;
  /** Every board that is not builtin (rebuilds, reconciliation). */
  definedBoards(): Promise<BoardRules[]>;
  page(shape: BoardShape, season: string, after: Position | undefined, limit: number): Promise<EntryPage>;
  around(shape: BoardShape, season: string, userId: string, around: number): Promise<{ entry?: RankedDefinedEntry; page: EntryPage }>;
  entriesOf(shape: BoardShape, season: string, userIds: string[]): Promise<EntryPage>;
  /** Whether the board has any entry in this season. */
  hasSeason(boardId: string, season: string): Promise<boolean>;
  /** A season's entries by user id after `afterUserId` (loads and reconciliation walk a season with it). */
  seasonEntries(boardId: string, season: string, page: { after: string; limit: number } | { userIds: string[] }): Promise<DefinedEntry[]>;
}

// Whole milliseconds, as Redis's tie keys keep them (floor, as pg's Date).
const REACHED_MS = sql`floor(extract(epoch from e.reached_at) * 1000)::bigint`;
const entryColumns = (username: RawBuilder<unknown>) =>
  sql`e.user_id, ${username} AS username, e.score, e.subscore, coalesce(e.metadata::text, '') AS metadata, ${REACHED_MS} AS reached_ms, e.version`;
const ENTRY_COLUMNS = entryColumns(sql`u.username`);
// A season walked by user id takes each name by its key. Joined, users
// came as a merge join that scanned users from the first id to the page's
// last on every page: a million users made a 100k-entry season's load
// twenty scans of up to a million rows.
const WALK_COLUMNS = entryColumns(sql`(SELECT u.username FROM users u WHERE u.user_id = e.user_id)`);

interface EntryRow {
  user_id: string;
  username: string;
  score: number;
  subscore: number;
  metadata: string;
  reached_ms: number;
  version: number;
}
const entryOf = (r: EntryRow): DefinedEntry => ({
  userId: r.user_id,
  username: r.username,
  score: Number(r.score),
  subscore: Number(r.subscore),
  reachedAtMs: Number(r.reached_ms),
  version: Number(r.version),
  metadata: r.metadata,
});

/** The board's order as SQL: what entries.ts's member encoding gives Redis. */
function orderOf(shape: BoardShape): RawBuilder<unknown> {
  const dir = sql.raw(shape.order === "desc" ? "DESC" : "ASC");
  const subscore = shape.tieRule === "subscore" ? sql`e.subscore ${dir},` : sql``;
  return sql`e.score ${dir}, ${subscore} ${REACHED_MS} ASC, e.user_id COLLATE "C" ${dir}`;
}

/** Entries strictly after a position in the board's order. */
function after(shape: BoardShape, position: Position): RawBuilder<unknown> {
  const parts = parseMember(shape, position.member);
  if (!parts) throw new Error(`not a member of board ${shape.boardId}: ${position.member}`);
  const worse = sql.raw(shape.order === "desc" ? "<" : ">");
  const laterUser = sql.raw(shape.order === "desc" ? "<" : ">");
  const sameScore = sql`(${REACHED_MS} > ${parts.reachedAtMs} OR (${REACHED_MS} = ${parts.reachedAtMs} AND e.user_id COLLATE "C" ${laterUser} ${parts.userId}))`;
  const ties = parts.subscore === undefined ? sameScore : sql`(e.subscore ${worse} ${parts.subscore} OR (e.subscore = ${parts.subscore} AND ${sameScore}))`;
  return sql`(e.score ${worse} ${position.score} OR (e.score = ${position.score} AND ${ties}))`;
}

const DEFINITIONS_TTL_MS = 5_000;
const MISS_RELOAD_MS = 1_000;

export class PostgresDefinedBoards implements DefinedBoardSource {
  private cached: { at: number; boards: Map<string, BoardRules> } | undefined;

  constructor(
    private readonly db: Db,
    private readonly nowMs: () => number = Date.now,
  ) {}

  // Definitions change rarely (an admin's update); reads take them from a
  // copy at most DEFINITIONS_TTL_MS old, so a hot board costs no query per
  // read. An id the copy lacks reloads it if it is older than
  // MISS_RELOAD_MS: a board just created is readable within a second, and
  // reads of ids that do not exist cost at most a query a second.
  private async definitions(maxAgeMs = DEFINITIONS_TTL_MS): Promise<Map<string, BoardRules>> {
    const now = this.nowMs();
    if (this.cached && now - this.cached.at < maxAgeMs) return this.cached.boards;
    const rows = await this.db.selectFrom("board_definitions").selectAll().execute();
    const boards = new Map(
      rows.map((r): [string, BoardRules] => [
        r.board_id,
        {
          boardId: r.board_id,
          title: r.title,
          order: r.sort_order,
          tieRule: r.tie_rule,
          resetSchedule: r.reset_schedule,
          timeZone: r.time_zone,
          retainedSeasons: r.retained_seasons,
          builtin: r.builtin,
          archived: r.archived_at !== null,
        },
      ]),
    );
    this.cached = { at: now, boards };
    return boards;
  }

  async board(boardId: string): Promise<BoardRules | undefined> {
    return (await this.definitions()).get(boardId) ?? (await this.definitions(MISS_RELOAD_MS)).get(boardId);
  }

  async definedBoards(): Promise<BoardRules[]> {
    return [...(await this.definitions()).values()].filter((b) => !b.builtin);
  }

  async page(shape: BoardShape, season: string, position: Position | undefined, limit: number): Promise<EntryPage> {
    const inSeason = sql`e.board_id = ${shape.boardId} AND e.season = ${season}`;
    const { rows } = await sql<EntryRow>`
      SELECT ${ENTRY_COLUMNS} FROM board_entries e JOIN users u ON u.user_id = e.user_id
      WHERE ${inSeason} AND ${position ? after(shape, position) : sql`true`}
      ORDER BY ${orderOf(shape)} LIMIT ${limit}`.execute(this.db);
    const { rows: counts } = await sql<{ total: number; before: number }>`
      SELECT count(*)::int AS total, count(*) FILTER (WHERE NOT ${position ? after(shape, position) : sql`true`})::int AS before
      FROM board_entries e WHERE ${inSeason}`.execute(this.db);
    const { total, before } = counts[0] ?? { total: 0, before: 0 };
    return { total: Number(total), entries: rows.map((r, i) => ({ ...entryOf(r), rank: Number(before) + i + 1 })) };
  }

  async around(shape: BoardShape, season: string, userId: string, around: number): Promise<{ entry?: RankedDefinedEntry; page: EntryPage }> {
    const { rows } = await this.ranked(
      shape,
      season,
      sql`r.rank BETWEEN (SELECT rank FROM ranked WHERE user_id = ${userId}) - ${around} AND (SELECT rank FROM ranked WHERE user_id = ${userId}) + ${around}`,
    );
    const page = await this.withTotal(shape, season, rows);
    return { entry: page.entries.find((e) => e.userId === userId), page };
  }

  async entriesOf(shape: BoardShape, season: string, userIds: string[]): Promise<EntryPage> {
    if (userIds.length === 0) return { total: 0, entries: [] };
    const { rows } = await this.ranked(shape, season, sql`r.user_id IN (${sql.join(userIds)})`);
    return this.withTotal(shape, season, rows);
  }

  // The season ranked whole, then filtered: a read PostgreSQL answers only
  // while Redis cannot (or for a season being loaded), so one scan of the
  // season is fine.
  private ranked(shape: BoardShape, season: string, where: RawBuilder<unknown>) {
    return sql<EntryRow & { rank: number; total: number }>`
      WITH ranked AS (
        SELECT ${ENTRY_COLUMNS}, row_number() OVER (ORDER BY ${orderOf(shape)}) AS rank, count(*) OVER () AS total
        FROM board_entries e JOIN users u ON u.user_id = e.user_id
        WHERE e.board_id = ${shape.boardId} AND e.season = ${season})
      SELECT * FROM ranked r WHERE ${where} ORDER BY r.rank`.execute(this.db);
  }

  private async withTotal(shape: BoardShape, season: string, rows: (EntryRow & { rank: number; total: number })[]): Promise<EntryPage> {
    const total =
      rows.length > 0
        ? Number(rows[0]!.total)
        : Number(
            (
              await this.db
                .selectFrom("board_entries")
                .select((eb) => eb.fn.countAll<number>().as("n"))
                .where("board_id", "=", shape.boardId)
                .where("season", "=", season)
                .executeTakeFirst()
            )?.n ?? 0,
          );
    return { total, entries: rows.map((r) => ({ ...entryOf(r), rank: Number(r.rank) })) };
  }

  async hasSeason(boardId: string, season: string): Promise<boolean> {
    const row = await this.db
      .selectFrom("board_entries")
      .select("user_id")
      .where("board_id", "=", boardId)
      .where("season", "=", season)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  async seasonEntries(boardId: string, season: string, page: { after: string; limit: number } | { userIds: string[] }): Promise<DefinedEntry[]> {
    if ("userIds" in page && page.userIds.length === 0) return [];
    const which = "userIds" in page ? sql`e.user_id IN (${sql.join(page.userIds)})` : sql`e.user_id > ${page.after}`;
    const limit = "limit" in page ? sql`LIMIT ${page.limit}` : sql``;
    const { rows } = await sql<EntryRow>`
      SELECT ${WALK_COLUMNS} FROM board_entries e
      WHERE e.board_id = ${boardId} AND e.season = ${season} AND ${which}
      ORDER BY e.user_id ${limit}`.execute(this.db);
    return rows.map(entryOf);
  }
}

import type { Db } from "@scoreboard/platform/db";
import { memberOf, type BoardShape, type DefinedEntry } from "./entries.js";
import { PostgresDefinedBoards, type DefinedBoardSource } from "./postgres-store.js";
import type { RedisDefinedBoards, RepairEntry } from "./redis-store.js";
import { readableSeasons } from "./seasons.js";

/** An entry of a defined board Redis had wrong (or had and PostgreSQL does not). */
export interface DefinedDrift {
  boardId: string;
  season: string;
  userId: string;
  redis: number | null;
  /** null: PostgreSQL has no such entry, so it was removed. */
  postgres: number | null;
}

export interface DefinedReconcileResult {
  /** The (board, season) pairs compared, as "<board>/<season>". */
  seasons: string[];
  repaired: DefinedDrift[];
}

const BATCH = 2_000;

/**
 * Makes Redis say what PostgreSQL says about every readable season of every
 * defined board: an entry missing, at another version, score or position is
 * set (never rolling back a version an event stored after the read: the
 * repair script checks atomically); members PostgreSQL does not have are
 * removed. A season compared whole is then marked loaded.
 */
export async function reconcileDefinedBoards(db: Db, store: RedisDefinedBoards, now = new Date()): Promise<DefinedReconcileResult> {
  const source = new PostgresDefinedBoards(db);
  const result: DefinedReconcileResult = { seasons: [], repaired: [] };
  for (const board of await source.definedBoards()) {
    for (const season of readableSeasons(board, now)) {
      if (season.expiresAt && season.expiresAt <= now) continue;
      result.seasons.push(`${board.boardId}/${season.id}`);
      for (let after = ""; ; ) {
        const entries = await source.seasonEntries(board.boardId, season.id, { after, limit: BATCH });
        if (entries.length === 0) break;
        result.repaired.push(...(await reconcileBatch(source, store, board, season.id, season.expiresAt, entries)));
        after = entries.at(-1)!.userId;
      }
      await sweepSeason(source, store, board, season.id, result.repaired);
      await store.markLoaded(board.boardId, season.id, season.expiresAt);
    }
  }
  return result;
}

async function reconcileBatch(
  source: DefinedBoardSource,
  store: RedisDefinedBoards,
  shape: BoardShape,
  season: string,
  expiresAt: Date | undefined,
  entries: DefinedEntry[],
): Promise<DefinedDrift[]> {
  const stored = await store.storedOf(
    shape.boardId,
    season,
    entries.map((e) => e.userId),
  );
  const seen = new Map(entries.map((e, i) => [e.userId, stored[i]]));
  const wrong = (e: DefinedEntry) => {
    const s = seen.get(e.userId);
    return !s || s.version !== e.version || s.member !== memberOf(shape, e) || s.score !== e.score;
  };
  const repairs: RepairEntry[] = [];
  const ahead: string[] = [];
  for (const e of entries) {
    if ((seen.get(e.userId)?.version ?? -1) > e.version) ahead.push(e.userId);
    else if (wrong(e)) repairs.push(e);
  }
  // Redis newer than our read: an event applied since, or a version
  // PostgreSQL never made. Only a read after Redis's tells which.
  for (const fresh of await source.seasonEntries(shape.boardId, season, { userIds: ahead })) {
    const storedVersion = seen.get(fresh.userId)!.version;
    if (storedVersion > fresh.version) repairs.push({ ...fresh, replaces: storedVersion });
    else if (wrong(fresh)) repairs.push(fresh);
  }
  const changed = new Set(await store.repair(shape, season, repairs, expiresAt));
  return repairs
    .filter((r) => changed.has(r.userId))
    .map((r) => ({ boardId: shape.boardId, season, userId: r.userId, redis: seen.get(r.userId)?.score ?? null, postgres: r.score }));
}

/**
 * Removes members PostgreSQL does not have: of users without an entry in
 * the season, and members other than the one the user's field names.
 * PostgreSQL is asked after Redis, so a member an event just added is never
 * taken for one PostgreSQL lacks (events follow commits).
 */
async function sweepSeason(source: DefinedBoardSource, store: RedisDefinedBoards, shape: BoardShape, season: string, repaired: DefinedDrift[]): Promise<void> {
  for await (const batch of store.members(shape.boardId, season)) {
    const userIds = [...new Set(batch.map((m) => m.userId))];
    const [inPostgres, stored] = await Promise.all([source.seasonEntries(shape.boardId, season, { userIds }), store.storedOf(shape.boardId, season, userIds)]);
    const known = new Set(inPostgres.map((e) => e.userId));
    const own = new Map(userIds.map((id, i) => [id, stored[i]?.member]));
    const orphans = batch.filter((m) => !known.has(m.userId) || (own.get(m.userId) !== undefined && own.get(m.userId) !== m.member));
    const removed = new Set(await store.remove(shape.boardId, season, orphans));
    for (const o of orphans.filter((o) => removed.has(o.member))) {
      repaired.push({ boardId: shape.boardId, season, userId: o.userId, redis: o.score, postgres: null });
    }
  }
}

import type { BoardShape } from "./entries.js";
import type { DefinedBoardSource } from "./postgres-store.js";
import type { RedisDefinedBoards } from "./redis-store.js";

const BATCH = 5_000;

/**
 * Loads one season of a board from PostgreSQL into Redis, then marks it
 * loaded. Entries go through the versioned apply, so a load racing events
 * never moves an entry back, and loading twice changes nothing. Returns the
 * entries read.
 */
export async function loadSeason(
  source: DefinedBoardSource,
  store: RedisDefinedBoards,
  shape: BoardShape,
  season: string,
  expiresAt: Date | undefined,
): Promise<number> {
  if (expiresAt && expiresAt.getTime() <= Date.now()) return 0;
  let count = 0;
  let rows = await source.seasonEntries(shape.boardId, season, { after: "", limit: BATCH });
  while (rows.length > 0) {
    const next = rows.length < BATCH ? Promise.resolve([]) : source.seasonEntries(shape.boardId, season, { after: rows.at(-1)!.userId, limit: BATCH });
    await store.applyMany(shape, season, rows, expiresAt);
    count += rows.length;
    rows = await next;
  }
  await store.markLoaded(shape.boardId, season, expiresAt);
  return count;
}

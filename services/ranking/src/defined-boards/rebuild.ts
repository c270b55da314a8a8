import type { Db } from "@scoreboard/platform/db";
import { loadSeason } from "./load.js";
import { PostgresDefinedBoards } from "./postgres-store.js";
import type { RedisDefinedBoards } from "./redis-store.js";
import { readableSeasons } from "./seasons.js";

// One season's load keeps one PostgreSQL page and one Redis apply in
// flight, and waits on whichever is slower; a few seasons at a time keep
// both busy.
const LOADS_AT_ONCE = 3;

/**
 * Loads every readable season (the current one and those retained) of every
 * board that is not builtin, archived ones included (their seasons stay
 * readable). Part of ranking's rebuild; returns the entries loaded.
 */
export async function rebuildDefinedBoards(db: Db, store: RedisDefinedBoards, now = new Date()): Promise<number> {
  const source = new PostgresDefinedBoards(db);
  const loads = (await source.definedBoards()).flatMap((board) => readableSeasons(board, now).map((season) => ({ board, season })));
  let entries = 0;
  let next = 0;
  const worker = async () => {
    while (next < loads.length) {
      const { board, season } = loads[next++]!;
      // Not `entries += await ...`: that reads `entries` before the await.
      const loaded = await loadSeason(source, store, board, season.id, season.expiresAt);
      entries += loaded;
    }
  };
  await Promise.all(Array.from({ length: Math.min(LOADS_AT_ONCE, loads.length) }, worker));
  return entries;
}

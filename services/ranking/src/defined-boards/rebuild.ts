import type { Db } from "@scoreboard/platform/db";
import { loadSeason } from "./load.js";
import { PostgresDefinedBoards } from "./postgres-store.js";
import type { RedisDefinedBoards } from "./redis-store.js";
import { readableSeasons } from "./seasons.js";

/**
 * Loads every readable season (the current one and those retained) of every
 * board that is not builtin, archived ones included (their seasons stay
 * readable). Part of ranking's rebuild; returns the entries loaded.
 */
export async function rebuildDefinedBoards(db: Db, store: RedisDefinedBoards, now = new Date()): Promise<number> {
  const source = new PostgresDefinedBoards(db);
  let entries = 0;
  for (const board of await source.definedBoards()) {
    for (const season of readableSeasons(board, now)) entries += await loadSeason(source, store, board, season.id, season.expiresAt);
  }
  return entries;
}

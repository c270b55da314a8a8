import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { SortOrder, TieRule } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import type { ScoreChanged } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { BoardShape } from "./entries.js";
import type { RedisDefinedBoards, SeasonEntry } from "./redis-store.js";

/** Whole milliseconds, rounded down: what PostgreSQL's reads compare (floor of the microseconds). */
const msOf = (ts: Timestamp) => Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1_000_000);

/** A submission's event as the season entry it sets, with the board's shape and the season's expiry. */
export function boardEntryOf(event: ScoreChanged): { shape: BoardShape; entry: SeasonEntry; expiresAt?: Date } | undefined {
  const changed = event.boardEntry;
  if (!changed) return undefined;
  const shape: BoardShape = {
    boardId: changed.boardId,
    order: changed.sortOrder === SortOrder.ASCENDING ? "asc" : "desc",
    tieRule: changed.tieRule === TieRule.SUBSCORE ? "subscore" : "first",
  };
  const entry: SeasonEntry = {
    boardId: changed.boardId,
    season: changed.season,
    userId: event.userId,
    username: event.username || event.userId,
    score: Number(changed.score),
    subscore: Number(changed.subscore),
    reachedAtMs: changed.reachedAt ? msOf(changed.reachedAt) : event.occurredAt ? msOf(event.occurredAt) : Date.now(),
    version: Number(changed.version),
    metadata: changed.metadata,
  };
  return { shape, entry, expiresAt: changed.expiresAt ? timestampDate(changed.expiresAt) : undefined };
}

/** The part of the Redis adapter the consumer uses. */
export type DefinedBoardWrites = Pick<RedisDefinedBoards, "apply">;

/** Applies a submission's event (newer version wins); true when it changed the season. */
export async function applyBoardEntryChanged(store: DefinedBoardWrites, event: ScoreChanged): Promise<boolean> {
  const found = boardEntryOf(event);
  return found ? store.apply(found.shape, found.entry, found.expiresAt) : false;
}

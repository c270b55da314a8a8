import { SeasonSchedule, type SeasonWindow } from "@scoreboard/platform/seasons";
import type { BoardRules } from "./postgres-store.js";

/** A season a read may name: readable until `expiresAt` (never when unset). */
export interface ReadableSeason extends SeasonWindow {
  current: boolean;
  expiresAt?: Date;
}

/** A season id the board does not keep (not one of its schedule, not started yet, or past retention). */
export class SeasonNotReadable extends Error {}

const scheduleOf = (board: BoardRules) => new SeasonSchedule(board.resetSchedule, board.timeZone);

/** The current season and the retained ones before it, newest first. */
export function readableSeasons(board: BoardRules, now: Date): ReadableSeason[] {
  const schedule = scheduleOf(board);
  return schedule
    .recent(now, board.retainedSeasons)
    .map((season, i) => ({ ...season, current: i === 0, expiresAt: schedule.expiresAt(season, board.retainedSeasons) }));
}

/**
 * The season a read names: "" is the current one; an id must be the current
 * season or one of the `retained_seasons` before it. A season recorded under
 * an earlier reset schedule of the board is not one of the current
 * schedule's, so it is not readable.
 */
export function readableSeason(board: BoardRules, id: string, now: Date): ReadableSeason {
  const seasons = readableSeasons(board, now);
  if (id === "") return seasons[0]!;
  const found = seasons.find((s) => s.id === id);
  if (found) return found;
  const season = scheduleOf(board).seasonById(id);
  const kept = `board "${board.boardId}" keeps its current season and ${board.retainedSeasons} before it`;
  if (!season) {
    throw new SeasonNotReadable(
      `season "${id}" is not a season of board "${board.boardId}" (reset schedule "${board.resetSchedule}" in ${board.timeZone}; ids look like ${seasons[0]!.id})`,
    );
  }
  if (season.startsAt > seasons[0]!.startsAt) throw new SeasonNotReadable(`season "${id}" of board "${board.boardId}" has not started yet`);
  throw new SeasonNotReadable(`season "${id}" of board "${board.boardId}" is past its retention: ${kept}`);
}

/** When a season of the board stops being readable, as the definition says now. */
export function expiryOf(board: BoardRules, season: SeasonWindow): Date | undefined {
  return scheduleOf(board).expiresAt(season, board.retainedSeasons);
}

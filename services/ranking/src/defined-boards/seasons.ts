import { seasonSchedule, seasonStartOf, type SeasonWindow } from "@scoreboard/platform/seasons";
import type { BoardRules } from "./postgres-store.js";

/** A season a read may name: readable until `expiresAt` (never when unset). */
export interface ReadableSeason extends SeasonWindow {
  current: boolean;
  expiresAt?: Date;
}

/** A season id the board does not keep: not one of its schedule, not started yet, or past retention. */
export class SeasonNotReadable extends Error {
  constructor(
    message: string,
    readonly reason: "not-of-schedule" | "not-started" | "expired",
  ) {
    super(message);
  }
}

const scheduleOf = (board: BoardRules) => seasonSchedule(board.resetSchedule, board.timeZone);

/** The current season and the retained ones before it, newest first. */
export function readableSeasons(board: BoardRules, now: Date): ReadableSeason[] {
  return scheduleOf(board)
    .readable(now, board.retainedSeasons)
    .map((season, i) => ({ ...season, current: i === 0 }));
}

/** The id of the season the board's submissions count in now. */
export function currentSeasonId(board: BoardRules, now: Date): string {
  return scheduleOf(board).seasonAt(now).id;
}

/** The season the board's submissions count in now (what its streams show): readableSeasons' first, without computing the rest. */
export function currentSeason(board: BoardRules, now: Date): ReadableSeason {
  const schedule = scheduleOf(board);
  const season = schedule.seasonAt(now);
  return { ...season, current: true, expiresAt: schedule.expiresAt(season, board.retainedSeasons) };
}

/**
 * The season a read names: "" is the current one; an id must be the current
 * season or one of the `retained_seasons` before it. (A season recorded
 * under an earlier reset schedule of the board is not one of the current
 * schedule's: see earlierScheduleSeason.)
 */
export function readableSeason(board: BoardRules, id: string, now: Date): ReadableSeason {
  const current = currentSeason(board, now);
  if (id === "" || id === current.id) return current;
  const schedule = scheduleOf(board);
  const season = schedule.seasonById(id);
  if (!season) {
    throw new SeasonNotReadable(
      `season "${id}" is not a season of board "${board.boardId}" (reset schedule "${board.resetSchedule}" in ${board.timeZone}; ids look like ${current.id})`,
      "not-of-schedule",
    );
  }
  if (season.startsAt > current.startsAt) throw new SeasonNotReadable(`season "${id}" of board "${board.boardId}" has not started yet`, "not-started");
  const expiresAt = schedule.expiresAt(season, board.retainedSeasons);
  if (expiresAt && expiresAt <= now) {
    const kept = `board "${board.boardId}" keeps its current season and ${board.retainedSeasons} before it`;
    throw new SeasonNotReadable(`season "${id}" of board "${board.boardId}" is past its retention: ${kept}`, "expired");
  }
  return { ...season, current: false, expiresAt };
}

/**
 * A season of an earlier reset schedule of the board (its id is still its
 * first instant): readable while the current schedule's season containing
 * its start is, and expiring with it, as score computes its events'
 * expires_at. Whether the board has such a season at all only PostgreSQL
 * knows; undefined when it could not be readable.
 */
export function earlierScheduleSeason(board: BoardRules, id: string, now: Date): ReadableSeason | undefined {
  const startsAt = seasonStartOf(id);
  if (!startsAt || startsAt > now) return undefined;
  const schedule = scheduleOf(board);
  const containing = schedule.seasonAt(startsAt);
  const expiresAt = schedule.expiresAt(containing, board.retainedSeasons);
  if (expiresAt && expiresAt <= now) return undefined;
  return { id, startsAt, endsAt: containing.endsAt, current: false, expiresAt };
}

/** When a season of the board stops being readable, as the definition says now. */
export function expiryOf(board: BoardRules, season: SeasonWindow): Date | undefined {
  return scheduleOf(board).expiresAt(season, board.retainedSeasons);
}

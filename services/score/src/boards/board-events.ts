import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { BoardEntryChangedSchema, type BoardEntryChanged } from "@scoreboard/gen/scoreboard/v1/events_pb";
import type { BoardDefinitionsTable } from "@scoreboard/platform/db";
import { seasonStartOf } from "@scoreboard/platform/seasons";
import { scheduleOf, sortOrderEnum, tieRuleEnum } from "./board-rules.js";

/**
 * A board submission's ledger row, with its board's definition as it is when
 * the relay publishes (sort order and tie rule never change; the schedule and
 * retention may, and expires_at follows them as reads do).
 */
export interface BoardLedgerRow {
  board_id: string;
  season: string;
  /** The entry's score, subscore, metadata (jsonb text) and version after the submission. */
  new_score: number | null;
  subscore: number | null;
  metadata: string | null;
  version: number | null;
  /** The submission's time: the entry's reached_at, since only changing submissions are published. */
  created_at: Date;
  sort_order: BoardDefinitionsTable["sort_order"];
  tie_rule: BoardDefinitionsTable["tie_rule"];
  reset_schedule: string;
  time_zone: string;
  retained_seasons: number;
}

/** ScoreChanged.board_entry of a submission that changed its entry (board-functions.ts). */
export function boardEntryChangedOf(row: BoardLedgerRow): BoardEntryChanged {
  const schedule = scheduleOf({ resetSchedule: row.reset_schedule, timeZone: row.time_zone });
  const startsAt = seasonStartOf(row.season);
  // A season of an earlier schedule of the board ends where the current schedule's season containing its start ends.
  const season = schedule.seasonById(row.season) ?? (startsAt ? schedule.seasonAt(startsAt) : undefined);
  const expiresAt = season && schedule.expiresAt(season, row.retained_seasons);
  return create(BoardEntryChangedSchema, {
    boardId: row.board_id,
    season: row.season,
    score: BigInt(row.new_score ?? 0),
    subscore: BigInt(row.subscore ?? 0),
    reachedAt: timestampFromDate(row.created_at),
    version: BigInt(row.version ?? 0),
    metadata: row.metadata ?? "",
    sortOrder: sortOrderEnum(row.sort_order),
    tieRule: tieRuleEnum(row.tie_rule),
    expiresAt: expiresAt ? timestampFromDate(expiresAt) : undefined,
  });
}

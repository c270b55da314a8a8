// A board definition's rules, in one place: what a valid definition is, what
// an update may change, and how the proto's BoardDefinition maps to the row
// in board_definitions (migration 011) and back.
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  BoardDefinitionSchema,
  ScoreOperator,
  SeasonSchema,
  SortOrder,
  TieRule,
  type BoardDefinition,
  type Season,
} from "@scoreboard/gen/scoreboard/v1/boards_pb";
import type { BoardDefinitionsTable } from "@scoreboard/platform/db";
import { ScheduleError, seasonSchedule, type SeasonSchedule, type SeasonWindow } from "@scoreboard/platform/seasons";

import { BUILTIN_BOARD_IDS, DEFINED_BOARD_ID as BOARD_ID, DEFINED_BOARD_ID_RULE as BOARD_ID_RULE } from "@scoreboard/platform/board-params";

export { BOARD_ID, BOARD_ID_RULE, BUILTIN_BOARD_IDS };
export const MAX_SAFE_SCORE = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_TITLE = 200;
const MAX_METADATA_BYTES = 4096;
const MAX_RETAINED_SEASONS = 1000;
const MAX_WRITE_SCOPES = 16;
// A scope as tokens carry it in their space-separated "scope" claim.
const SCOPE = /^[\x21-\x7e]{1,64}$/;

type SortOrderName = BoardDefinitionsTable["sort_order"];
type OperatorName = BoardDefinitionsTable["operator"];
type TieRuleName = BoardDefinitionsTable["tie_rule"];

const SORT_ORDERS: Record<SortOrderName, SortOrder> = { desc: SortOrder.DESCENDING, asc: SortOrder.ASCENDING };
const OPERATORS: Record<OperatorName, ScoreOperator> = {
  incr: ScoreOperator.INCREMENT,
  decr: ScoreOperator.DECREMENT,
  best: ScoreOperator.BEST,
  set: ScoreOperator.SET,
};
const TIE_RULES: Record<TieRuleName, TieRule> = { first: TieRule.FIRST_TO_REACH, subscore: TieRule.SUBSCORE };

/** What an admin defines: every field of a definition a request sets. */
export interface BoardSpec {
  boardId: string;
  title: string;
  sortOrder: SortOrderName;
  operator: OperatorName;
  resetSchedule: string;
  timeZone: string;
  tieRule: TieRuleName;
  minScore: number | null;
  maxScore: number | null;
  writeScopes: string[];
  requiresTicket: boolean;
  metadataMaxBytes: number;
  retainedSeasons: number;
}

/** A stored definition. */
export interface Board extends BoardSpec {
  builtin: boolean;
  archived: boolean;
  revision: number;
  createdAt: Date;
  updatedAt: Date;
}

/**
 * A request's definition, checked. An UNSPECIFIED sort order or tie rule is
 * left out: a new board takes the defaults (newBoardSpec), an update keeps
 * the board's (updatedSpec).
 */
export type BoardSpecInput = Omit<BoardSpec, "sortOrder" | "tieRule"> & { sortOrder?: SortOrderName; tieRule?: TieRuleName };

export function boardSpecOf(message: BoardDefinition | undefined): BoardSpecInput {
  if (!message) throw invalid("board is required");
  const { boardId, title } = message;
  if (!BOARD_ID.test(boardId)) throw invalid(BOARD_ID_RULE);
  if (title.length > MAX_TITLE) throw invalid(`title must be at most ${MAX_TITLE} characters`);
  const resetSchedule = message.resetSchedule.trim() || "none";
  const timeZone = message.timeZone || "UTC";
  try {
    seasonSchedule(resetSchedule, timeZone);
  } catch (err) {
    if (err instanceof ScheduleError) throw invalid(err.message);
    throw err;
  }
  const minScore = boundOf("min_score", message.minScore);
  const maxScore = boundOf("max_score", message.maxScore);
  if (minScore !== null && maxScore !== null && minScore > maxScore) throw invalid("min_score must not be above max_score");
  if (!Number.isInteger(message.metadataMaxBytes) || message.metadataMaxBytes < 0 || message.metadataMaxBytes > MAX_METADATA_BYTES) {
    throw invalid(`metadata_max_bytes must be 0..${MAX_METADATA_BYTES}`);
  }
  if (message.retainedSeasons < 0 || message.retainedSeasons > MAX_RETAINED_SEASONS) {
    throw invalid(`retained_seasons must be 0..${MAX_RETAINED_SEASONS}`);
  }
  const writeScopes = [...new Set(message.writeScopes)];
  if (writeScopes.length > MAX_WRITE_SCOPES) throw invalid(`write_scopes may name at most ${MAX_WRITE_SCOPES} scopes`);
  for (const scope of writeScopes) if (!SCOPE.test(scope)) throw invalid(`write scope "${scope}" must be 1..64 visible ASCII characters`);
  return {
    boardId,
    title,
    sortOrder: nameOf(SORT_ORDERS, message.sortOrder, "sort_order"),
    operator: nameOf(OPERATORS, message.operator, "operator") ?? "incr",
    resetSchedule,
    timeZone,
    tieRule: nameOf(TIE_RULES, message.tieRule, "tie_rule"),
    minScore,
    maxScore,
    writeScopes,
    requiresTicket: message.requiresTicket,
    metadataMaxBytes: message.metadataMaxBytes,
    retainedSeasons: message.retainedSeasons,
  };
}

/** A new board: descending and first to reach unless said otherwise; builtin ids are taken. */
export function newBoardSpec(input: BoardSpecInput): BoardSpec {
  if (BUILTIN_BOARD_IDS.has(input.boardId)) {
    throw new ConnectError(`board "${input.boardId}" is builtin: choose another id`, Code.AlreadyExists);
  }
  return { ...input, sortOrder: input.sortOrder ?? "desc", tieRule: input.tieRule ?? "first" };
}

/**
 * What `input` makes of `current`, or FAILED_PRECONDITION: builtin boards
 * are fixed, and sort order and tie rule are immutable.
 */
export function updatedSpec(current: Board, input: BoardSpecInput): BoardSpec {
  const refuse = (message: string) => new ConnectError(message, Code.FailedPrecondition);
  if (current.builtin) throw refuse(`board "${current.boardId}" is builtin: its rules are fixed`);
  const next = { ...input, sortOrder: input.sortOrder ?? current.sortOrder, tieRule: input.tieRule ?? current.tieRule };
  if (next.sortOrder !== current.sortOrder) throw refuse("sort_order cannot change: past seasons keep the order they were ranked in");
  if (next.tieRule !== current.tieRule) throw refuse("tie_rule cannot change: past seasons keep the order they were ranked in");
  return next;
}

/** The board's season schedule (a stored definition's is always valid). */
export function scheduleOf(board: Pick<BoardSpec, "resetSchedule" | "timeZone">): SeasonSchedule {
  return seasonSchedule(board.resetSchedule, board.timeZone);
}

/** A stored row as a definition. */
export function boardOfRow(row: {
  board_id: string;
  title: string;
  sort_order: SortOrderName;
  operator: OperatorName;
  reset_schedule: string;
  time_zone: string;
  tie_rule: TieRuleName;
  min_score: number | null;
  max_score: number | null;
  write_scopes: string[];
  requires_ticket: boolean;
  metadata_max_bytes: number;
  retained_seasons: number;
  builtin: boolean;
  archived_at: Date | null;
  revision: number;
  created_at: Date;
  updated_at: Date;
}): Board {
  return {
    boardId: row.board_id,
    title: row.title,
    sortOrder: row.sort_order,
    operator: row.operator,
    resetSchedule: row.reset_schedule,
    timeZone: row.time_zone,
    tieRule: row.tie_rule,
    minScore: row.min_score,
    maxScore: row.max_score,
    writeScopes: row.write_scopes,
    requiresTicket: row.requires_ticket,
    metadataMaxBytes: row.metadata_max_bytes,
    retainedSeasons: row.retained_seasons,
    builtin: row.builtin,
    archived: row.archived_at !== null,
    revision: row.revision,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** The columns a spec sets. */
export function rowOfSpec(spec: BoardSpec) {
  return {
    board_id: spec.boardId,
    title: spec.title,
    sort_order: spec.sortOrder,
    operator: spec.operator,
    reset_schedule: spec.resetSchedule,
    time_zone: spec.timeZone,
    tie_rule: spec.tieRule,
    min_score: spec.minScore,
    max_score: spec.maxScore,
    write_scopes: spec.writeScopes,
    requires_ticket: spec.requiresTicket,
    metadata_max_bytes: spec.metadataMaxBytes,
    retained_seasons: spec.retainedSeasons,
  };
}

export function boardMessage(board: Board): BoardDefinition {
  return create(BoardDefinitionSchema, {
    boardId: board.boardId,
    title: board.title,
    sortOrder: SORT_ORDERS[board.sortOrder],
    operator: OPERATORS[board.operator],
    resetSchedule: board.resetSchedule,
    timeZone: board.timeZone,
    tieRule: TIE_RULES[board.tieRule],
    minScore: board.minScore === null ? undefined : BigInt(board.minScore),
    maxScore: board.maxScore === null ? undefined : BigInt(board.maxScore),
    writeScopes: board.writeScopes,
    requiresTicket: board.requiresTicket,
    metadataMaxBytes: board.metadataMaxBytes,
    retainedSeasons: board.retainedSeasons,
    builtin: board.builtin,
    archived: board.archived,
    revision: BigInt(board.revision),
    createdAt: timestampFromDate(board.createdAt),
    updatedAt: timestampFromDate(board.updatedAt),
  });
}

/** The proto enum of a stored sort order / tie rule (events carry them). */
export const sortOrderEnum = (name: SortOrderName): SortOrder => SORT_ORDERS[name];
export const tieRuleEnum = (name: TieRuleName): TieRule => TIE_RULES[name];

export function seasonMessage(season: SeasonWindow, current: boolean): Season {
  return create(SeasonSchema, {
    id: season.id,
    startsAt: timestampFromDate(season.startsAt),
    endsAt: season.endsAt ? timestampFromDate(season.endsAt) : undefined,
    current,
  });
}

/** Whether a score fits the safe integer range every board stays within. */
export function isSafeScore(value: bigint): boolean {
  return value >= -MAX_SAFE_SCORE && value <= MAX_SAFE_SCORE;
}

function boundOf(field: string, value: bigint | undefined): number | null {
  if (value === undefined) return null;
  if (!isSafeScore(value)) throw invalid(`${field} must be within ±${MAX_SAFE_SCORE}`);
  return Number(value);
}

function nameOf<N extends string, E extends number>(names: Record<N, E>, value: E, field: string): N | undefined {
  if (value === 0) return undefined;
  const name = (Object.keys(names) as N[]).find((n) => names[n] === value);
  if (!name) throw invalid(`${field} ${value} is not one this server knows`);
  return name;
}

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

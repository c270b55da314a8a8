// A board definition as operators write it: the JSON of `scoreboard boards
// apply` (and the chart's `boards:` values) and the flags of `define` and
// `update`. Only the shape is checked here (names, enums, whole numbers), so
// a bad file or flag fails before anything is contacted; which ids, schedules
// and bounds are allowed is score's rule (BoardAdminService) and stays there.
import { clone, create } from "@bufbuild/protobuf";
import { BoardDefinitionSchema, type BoardDefinition } from "@scoreboard/gen/scoreboard/v1/boards_pb";
import {
  OPERATOR_NAMES,
  SORT_ORDER_NAMES,
  TIE_RULE_NAMES,
  boardDefinitionJson,
  type OperatorName,
  type SortOrderName,
  type TieRuleName,
} from "@scoreboard/platform/board-json";
import { UsageError } from "./command.js";

/** The mutable and immutable fields an operator sets; everything else is output only. */
export interface BoardSpec {
  boardId: string;
  title?: string;
  sortOrder?: SortOrderName;
  operator?: OperatorName;
  resetSchedule?: string;
  timeZone?: string;
  tieRule?: TieRuleName;
  minScore?: number | null;
  maxScore?: number | null;
  writeScopes?: string[];
  requiresTicket?: boolean;
  metadataMaxBytes?: number;
  retainedSeasons?: number;
}

const FIELDS = new Set([
  "boardId",
  "title",
  "sortOrder",
  "operator",
  "resetSchedule",
  "timeZone",
  "tieRule",
  "minScore",
  "maxScore",
  "writeScopes",
  "requiresTicket",
  "metadataMaxBytes",
  "retainedSeasons",
]);

/** Checks one definition from JSON (an element of the apply file); `where` names it in errors. */
export function specFromJson(value: unknown, where: string): BoardSpec {
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new UsageError(`${where} must be a JSON object`);
  const raw = value as Record<string, unknown>;
  const unknown = Object.keys(raw).find((k) => !FIELDS.has(k));
  if (unknown !== undefined) throw new UsageError(`${where}: unknown field "${unknown}" (fields: ${[...FIELDS].join(", ")})`);
  const text = (name: string) => {
    const v = raw[name];
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw new UsageError(`${where}: ${name} must be a string`);
    return v;
  };
  const whole = (name: string, nullable = false) => {
    const v = raw[name];
    if (v === undefined || (nullable && v === null)) return v as undefined | null;
    if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new UsageError(`${where}: ${name} must be a whole number`);
    return v;
  };
  const boardId = text("boardId");
  if (!boardId) throw new UsageError(`${where}: boardId is required`);
  const scopes = raw.writeScopes;
  if (scopes !== undefined && (!Array.isArray(scopes) || scopes.some((s) => typeof s !== "string"))) {
    throw new UsageError(`${where}: writeScopes must be a list of strings`);
  }
  if (raw.requiresTicket !== undefined && typeof raw.requiresTicket !== "boolean") throw new UsageError(`${where}: requiresTicket must be true or false`);
  return {
    boardId,
    title: text("title"),
    sortOrder: oneOf(text("sortOrder"), SORT_ORDER_NAMES, `${where}: sortOrder`),
    operator: oneOf(text("operator"), OPERATOR_NAMES, `${where}: operator`),
    resetSchedule: text("resetSchedule"),
    timeZone: text("timeZone"),
    tieRule: oneOf(text("tieRule"), TIE_RULE_NAMES, `${where}: tieRule`),
    minScore: whole("minScore", true),
    maxScore: whole("maxScore", true),
    writeScopes: scopes as string[] | undefined,
    requiresTicket: raw.requiresTicket as boolean | undefined,
    metadataMaxBytes: whole("metadataMaxBytes") ?? undefined,
    retainedSeasons: whole("retainedSeasons") ?? undefined,
  };
}

export function oneOf<K extends string>(value: string | undefined, allowed: Record<K, unknown>, what: string): K | undefined {
  if (value === undefined) return undefined;
  if (!Object.hasOwn(allowed, value)) throw new UsageError(`${what} must be one of ${Object.keys(allowed).join(", ")}, got "${value}"`);
  return value as K;
}

/**
 * The definition to send: the spec's fields over `base` (the board as it is,
 * for an update; the contract's defaults for a new one). A field the spec
 * leaves out keeps its value; minScore/maxScore null clears a bound.
 */
export function definitionOf(spec: BoardSpec, base?: BoardDefinition): BoardDefinition {
  // A copy: `create` would hand back `base` itself, and apply compares the two.
  const board = base ? clone(BoardDefinitionSchema, base) : create(BoardDefinitionSchema, { boardId: spec.boardId });
  board.boardId = spec.boardId;
  if (spec.title !== undefined) board.title = spec.title;
  if (spec.sortOrder !== undefined) board.sortOrder = SORT_ORDER_NAMES[spec.sortOrder];
  if (spec.operator !== undefined) board.operator = OPERATOR_NAMES[spec.operator];
  if (spec.resetSchedule !== undefined) board.resetSchedule = spec.resetSchedule;
  if (spec.timeZone !== undefined) board.timeZone = spec.timeZone;
  if (spec.tieRule !== undefined) board.tieRule = TIE_RULE_NAMES[spec.tieRule];
  if (spec.minScore !== undefined) board.minScore = spec.minScore === null ? undefined : BigInt(spec.minScore);
  if (spec.maxScore !== undefined) board.maxScore = spec.maxScore === null ? undefined : BigInt(spec.maxScore);
  if (spec.writeScopes !== undefined) board.writeScopes = [...spec.writeScopes];
  if (spec.requiresTicket !== undefined) board.requiresTicket = spec.requiresTicket;
  if (spec.metadataMaxBytes !== undefined) board.metadataMaxBytes = spec.metadataMaxBytes;
  if (spec.retainedSeasons !== undefined) board.retainedSeasons = spec.retainedSeasons;
  return board;
}

/** A definition as the JSON operators write (and `--json` prints), output-only fields included. */
export const specJson = boardDefinitionJson;

const OUTPUT_ONLY = new Set(["revision", "builtin", "archived", "createdAt", "updatedAt"]);

/** Whether sending `wanted` would change `current` (what `apply` skips when false). */
export function differs(current: BoardDefinition, wanted: BoardDefinition): boolean {
  const a = specJson(current);
  const b = specJson(wanted);
  return (Object.keys(a) as Array<keyof typeof a>).some((k) => !OUTPUT_ONLY.has(k) && JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

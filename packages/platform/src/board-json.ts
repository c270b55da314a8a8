// A board definition as JSON, the one shape people read and write: the REST
// API's answers, the CLI's output and its `boards apply` files (and so the
// chart's `boards:` values). Enums go by name ("descending", "best",
// "subscore"), int64s as JSON numbers where exact.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { ScoreOperator, SortOrder, TieRule, type BoardDefinition } from "@scoreboard/gen/scoreboard/v1/boards_pb";

/** Each enum's names; the first is what the contract's UNSPECIFIED means. */
export const SORT_ORDER_NAMES = { descending: SortOrder.DESCENDING, ascending: SortOrder.ASCENDING } as const;
export const OPERATOR_NAMES = { incr: ScoreOperator.INCREMENT, decr: ScoreOperator.DECREMENT, best: ScoreOperator.BEST, set: ScoreOperator.SET } as const;
export const TIE_RULE_NAMES = { first: TieRule.FIRST_TO_REACH, subscore: TieRule.SUBSCORE } as const;

export type SortOrderName = keyof typeof SORT_ORDER_NAMES;
export type OperatorName = keyof typeof OPERATOR_NAMES;
export type TieRuleName = keyof typeof TIE_RULE_NAMES;

/** The name of an enum value; the default's name for UNSPECIFIED (and anything unknown). */
export function enumName<K extends string>(names: Record<K, number>, value: number): K {
  const entries = Object.entries(names) as Array<[K, number]>;
  return (entries.find(([, v]) => v === value) ?? entries[0]!)[0];
}

/** An int64 as a JSON number when exact (scores within the contract's bounds always are), else a string. */
export function int64Json(value: bigint): number | string {
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : value.toString();
}

export const timestampJson = (t: Timestamp | undefined) => (t ? timestampDate(t).toISOString() : null);

export function boardDefinitionJson(b: BoardDefinition) {
  return {
    boardId: b.boardId,
    title: b.title,
    sortOrder: enumName(SORT_ORDER_NAMES, b.sortOrder),
    operator: enumName(OPERATOR_NAMES, b.operator),
    resetSchedule: b.resetSchedule || "none",
    timeZone: b.timeZone || "UTC",
    tieRule: enumName(TIE_RULE_NAMES, b.tieRule),
    minScore: b.minScore === undefined ? null : int64Json(b.minScore),
    maxScore: b.maxScore === undefined ? null : int64Json(b.maxScore),
    writeScopes: b.writeScopes,
    requiresTicket: b.requiresTicket,
    metadataMaxBytes: b.metadataMaxBytes,
    retainedSeasons: b.retainedSeasons,
    builtin: b.builtin,
    archived: b.archived,
    revision: int64Json(b.revision),
    createdAt: timestampJson(b.createdAt),
    updatedAt: timestampJson(b.updatedAt),
  };
}

export type BoardDefinitionJson = ReturnType<typeof boardDefinitionJson>;

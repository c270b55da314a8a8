import { Code, ConnectError } from "@connectrpc/connect";
import { resolveBoard, type PeriodRetention } from "./periods.js";

/** The board a request names when it names none. */
export const DEFAULT_BOARD = "global";
/** The most entries one page, rank query or stream may carry. */
export const MAX_LIMIT = 100;
export const DEFAULT_LIMIT = 10;

const BOARD_NAME = /^[a-z0-9][a-z0-9:_-]{0,63}$/;

/** Validates a board name ("" means global); INVALID_ARGUMENT says what is allowed. */
export function boardName(board: string): string {
  const name = board || DEFAULT_BOARD;
  if (!BOARD_NAME.test(name)) {
    throw new ConnectError("board must be 1..64 of a-z, 0-9, ':', '_' or '-'", Code.InvalidArgument);
  }
  return name;
}

/** Which boards a public edge serves. */
export interface BoardRules {
  /** The regions the deployment declares (REGIONS): region:<r> for any other r is unknown. */
  regions: ReadonlySet<string>;
  /** Period boards past this are refused, as ranking refuses them. */
  retention: PeriodRetention;
}

/**
 * A board the public edge serves ("" means global): `global`, `region:<r>`
 * for a declared region, `daily`/`weekly`/`monthly`, and a dated period that
 * has started and is within its retention. Every board a client may name
 * costs an upstream stream that push re-reads every few seconds, so names
 * that cannot hold anything are refused: NOT_FOUND for an unknown board,
 * INVALID_ARGUMENT for a malformed one, OUT_OF_RANGE for a period outside
 * its retention. Answers the name as given (`daily` stays `daily`, so a
 * stream follows the day).
 */
export function knownBoard(board: string, rules: BoardRules, nowMs = Date.now()): string {
  const name = boardName(board);
  if (name === DEFAULT_BOARD) return name;
  if (name.startsWith("region:")) {
    if (rules.regions.has(name.slice("region:".length))) return name;
    const served = rules.regions.size > 0 ? [...rules.regions].sort().join(", ") : "none";
    throw new ConnectError(`unknown board "${name}": this deployment's regions are ${served}`, Code.NotFound);
  }
  if (/^(daily|weekly|monthly)(:|$)/.test(name)) {
    resolveBoard(name, rules.retention, nowMs);
    return name;
  }
  throw new ConnectError(
    `unknown board "${name}": use global, region:<region>, daily, weekly, monthly or a dated period (daily:YYYY-MM-DD, weekly:YYYY-wWW, monthly:YYYY-MM)`,
    Code.NotFound,
  );
}

/** The ids of the seed boards' builtin definitions (migration 011): no defined board takes one. */
/** A defined board's id (migration 011 checks the same). */
export const DEFINED_BOARD_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const DEFINED_BOARD_ID_RULE = "board_id must be 1..64 of a-z, 0-9, _ and -, starting with a letter or digit";
/** The seed boards' definitions (migration 011): ids no defined board may take. */
export const BUILTIN_BOARD_IDS: ReadonlySet<string> = new Set(["global", "region", "daily", "weekly", "monthly"]);

/**
 * Whether a board name may be a defined board's id: 1..64 of a-z, 0-9, '_'
 * and '-' (no ':', so never a seed board's name such as region:eu or
 * daily:2026-12-06), and not a builtin id. A defined board's streams and
 * RankingService reads name it by its id.
 */
export function isDefinedBoardName(name: string): boolean {
  return DEFINED_BOARD_ID.test(name) && !BUILTIN_BOARD_IDS.has(name);
}

/** Validates a page size (0 means 10). */
export function pageLimit(limit: number): number {
  if (limit === 0) return DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new ConnectError(`limit must be 1..${MAX_LIMIT}`, Code.InvalidArgument);
  }
  return limit;
}

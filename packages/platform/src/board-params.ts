import { Code, ConnectError } from "@connectrpc/connect";

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

/** Validates a page size (0 means 10). */
export function pageLimit(limit: number): number {
  if (limit === 0) return DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
    throw new ConnectError(`limit must be 1..${MAX_LIMIT}`, Code.InvalidArgument);
  }
  return limit;
}

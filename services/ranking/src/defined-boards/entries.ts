// A defined board's entries as ranking keeps them: the order Redis sorts them
// in (one encoding for the sorted-set member, the PostgreSQL reads and the
// cursor), and the cursor a page hands out.

/** What ranking needs of a board's definition to order its entries (both are immutable). */
export interface BoardShape {
  boardId: string;
  order: "desc" | "asc";
  tieRule: "first" | "subscore";
}

/** A user's entry on one board in one season. */
export interface DefinedEntry {
  userId: string;
  username: string;
  score: number;
  subscore: number;
  /** When the entry last changed (ms since the epoch, whole milliseconds: what ties compare). */
  reachedAtMs: number;
  /** Per (board, season, user); the newer version wins. */
  version: number;
  /** The JSON object the entry carries; "" for none. */
  metadata: string;
}

export interface RankedDefinedEntry extends DefinedEntry {
  /** 1-based; no two entries share one (the tie rule decides). */
  rank: number;
}

/**
 * A place in a board's order: a score and the sorted-set member that orders
 * entries of equal score. A cursor is one; it stays meaningful after the
 * entry that made it moved or left.
 */
export interface Position {
  score: number;
  member: string;
}

// The member is "<tie key>|<user id>", and Redis orders equal scores by its
// bytes: descending boards are read from the top (ZREVRANGE), so there the
// greater member ranks first; ascending boards from the bottom (ZRANGE), the
// smaller first. The tie key is fixed width, so comparing members compares
// tie keys first:
// - TIE_RULE_SUBSCORE: 17 digits of subscore + 2^53 - 1 (every safe integer
//   fits). Increasing in the subscore, which both reading directions turn
//   into "the board's order" (a higher subscore first on a descending board,
//   a lower one on an ascending board);
// - then 13 digits of the reached-at time (ms), so the earlier ranks first:
//   MAX - ms on descending boards (read reversed), ms on ascending ones;
// - then the user id: greater first on descending boards, smaller first on
//   ascending ones (byte order, as PostgreSQL's COLLATE "C").
// Limits: reached-at times from 1970 to 2286, to the millisecond.
// BigInt: subscore + offset goes past 2^53, where doubles are no longer exact.
const SUBSCORE_OFFSET = BigInt(Number.MAX_SAFE_INTEGER);
const SUBSCORE_DIGITS = 17;
const TIME_MAX = 9_999_999_999_999;
const TIME_DIGITS = 13;

/** Tie keys' width per tie rule: what a cursor's member must have. */
export const tieKeyWidth = (shape: BoardShape) => (shape.tieRule === "subscore" ? SUBSCORE_DIGITS + TIME_DIGITS : TIME_DIGITS);

export function tieKeyOf(shape: BoardShape, subscore: number, reachedAtMs: number): string {
  const ms = Math.max(0, Math.min(TIME_MAX, Math.trunc(reachedAtMs)));
  const time = String(shape.order === "desc" ? TIME_MAX - ms : ms).padStart(TIME_DIGITS, "0");
  if (shape.tieRule !== "subscore") return time;
  return String(BigInt(subscore) + SUBSCORE_OFFSET).padStart(SUBSCORE_DIGITS, "0") + time;
}

export function memberOf(shape: BoardShape, entry: Pick<DefinedEntry, "userId" | "subscore" | "reachedAtMs">): string {
  return `${tieKeyOf(shape, entry.subscore, entry.reachedAtMs)}|${entry.userId}`;
}

export const positionOf = (shape: BoardShape, entry: DefinedEntry): Position => ({ score: entry.score, member: memberOf(shape, entry) });

/** What a member says: the subscore only on TIE_RULE_SUBSCORE boards. */
export interface MemberParts {
  subscore?: number;
  reachedAtMs: number;
  userId: string;
}

/** A member's parts, or undefined when it is not a member of a board of this shape. */
export function parseMember(shape: BoardShape, member: string): MemberParts | undefined {
  const width = tieKeyWidth(shape);
  if (member.length < width + 2 || member[width] !== "|" || !/^\d+$/.test(member.slice(0, width))) return undefined;
  const time = Number(member.slice(width - TIME_DIGITS, width));
  const reachedAtMs = shape.order === "desc" ? TIME_MAX - time : time;
  const userId = member.slice(width + 1);
  if (shape.tieRule !== "subscore") return { reachedAtMs, userId };
  const subscore = Number(BigInt(member.slice(0, SUBSCORE_DIGITS)) - SUBSCORE_OFFSET);
  return Number.isSafeInteger(subscore) ? { subscore, reachedAtMs, userId } : undefined;
}

// The cursor: base64url of "<season>|<score>|<member>". It names its season
// so a walk through the pages of "the current season" stays in the season it
// began in when a new one starts (see BoardReadService.getBoardPage).
export interface Cursor {
  season: string;
  after: Position;
}

export class CursorError extends Error {}

export function encodeCursor(cursor: Cursor): string {
  return Buffer.from(`${cursor.season}|${cursor.after.score}|${cursor.after.member}`, "utf8").toString("base64url");
}

/** The cursor, checked against the board's shape; throws CursorError when it is not one its pages gave. */
export function decodeCursor(shape: BoardShape, text: string): Cursor {
  const bad = () => new CursorError('cursor is not one this board\'s pages returned: pass next_cursor unchanged, or "" for the first page');
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw bad();
  const plain = Buffer.from(text, "base64url").toString("utf8");
  const first = plain.indexOf("|");
  const second = plain.indexOf("|", first + 1);
  if (first < 1 || second < 0) throw bad();
  const season = plain.slice(0, first);
  const scoreText = plain.slice(first + 1, second);
  const score = Number(scoreText);
  const member = plain.slice(second + 1);
  if (!/^-?\d+$/.test(scoreText) || !Number.isSafeInteger(score) || !parseMember(shape, member)) throw bad();
  return { season, after: { score, member } };
}

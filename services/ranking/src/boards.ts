import { create } from "@bufbuild/protobuf";
import type { Redis } from "ioredis";
import { NEWER_STATES_LUA } from "./newer-states.js";
import { LeaderboardEntrySchema, type LeaderboardEntry } from "@scoreboard/gen/scoreboard/v1/leaderboard_pb";
import { DEFAULT_RETENTION_MS, expiresAtMs, parsePeriodBoard, type PeriodRetention } from "@scoreboard/platform/periods";
import { RedisDefinedBoards } from "./defined-boards/redis-store.js";

export interface RankedEntry {
  rank: number;
  userId: string;
  username: string;
  score: number;
}

/** A board's entry as the API sends it (reads, announcements). */
export function toEntry(e: RankedEntry): LeaderboardEntry {
  return create(LeaderboardEntrySchema, { rank: BigInt(e.rank), userId: e.userId, username: e.username, score: BigInt(e.score) });
}

/** An absolute score of one user, versioned per user by the write side. */
export interface ScoreState {
  userId: string;
  username: string;
  score: number;
  version: number;
  /** When the user reached this score (ms since the epoch): earlier ranks first on a tie. */
  reachedAtMs: number;
}

/** A user's total on one period board ("daily:2026-11-23"). */
export interface PeriodTotal {
  board: string;
  score: number;
}

/** The read model: what ranking needs from Redis. */
export interface Boards {
  /** Applies a score if its version is newer than the one stored; true when it changed anything. */
  apply(state: ScoreState, boards: string[]): Promise<boolean>;
  /**
   * Applies a user's totals on period boards (state.score is ignored), same
   * version rule per board; returns the boards it changed.
   */
  applyPeriods(state: ScoreState, periods: PeriodTotal[]): Promise<string[]>;
  page(board: string, offset: number, limit: number): Promise<RankedEntry[]>;
  rankOf(board: string, userId: string): Promise<RankedEntry | undefined>;
}

// One hash tag so every key lives in one Redis Cluster slot and the script
// can touch them all atomically.
//
// Per user, one hash field holds all ranking needs besides the boards:
// "<version>|<13-digit tie key>|<username>". One field instead of three
// hashes (versions, names, members) halves Redis' work per user, which is
// what bounds a rebuild of a million users. The sorted-set member is
// "<tie key>|<user id>": the field's key is the user id, so it is not stored
// twice, and the name goes last because it may contain anything.
export const USERS = "{sb}:users";
/** Keys of the layout before USERS; a rebuild removes them. */
export const LEGACY_KEYS = ["{sb}:versions", "{sb}:names", "{sb}:members"];
export const boardKey = (board: string) => `{sb}:board:${board}`;
/** The keys of every region board there is (see APPLY_SCRIPT's mode 3). */
export const REGION_BOARDS = "{sb}:region-boards";
// A period board keeps its own "<version>|<tie key>" per user: a user's
// member on yesterday's board (when they reached yesterday's total) is not
// their member today; the hash and the board expire together.
export const periodUsersKey = (board: string) => `{sb}:pusers:${board}`;

// Ties: a sorted set orders equal scores by member bytes, and ZREVRANGE
// reverses that. A member is "<13 digits of (MAX - reached at ms)>|<user id>",
// so among equal scores whoever reached the score first comes first (then,
// within one millisecond, the greater user id). Limits: reached-at times are
// kept to the millisecond, until the year 2286.
const TIME_MAX = 9_999_999_999_999;
function tieKeyOf(reachedAtMs: number): string {
  return String(TIME_MAX - Math.max(0, Math.min(TIME_MAX, Math.trunc(reachedAtMs)))).padStart(13, "0");
}
function userIdOf(member: string): string {
  return member.slice(member.indexOf("|") + 1);
}
/** The sorted-set member of a user who reached their score at `reachedAtMs`. */
export function memberOf(userId: string, reachedAtMs: number): string {
  return `${tieKeyOf(reachedAtMs)}|${userId}`;
}

/** A USERS or period hash value, split. */
export interface StoredUser {
  version: number;
  member: string;
  username: string;
  /** The hash value as read. */
  value: string;
}
function parseStored(userId: string, value: string | null): StoredUser | undefined {
  if (!value) return undefined;
  const first = value.indexOf("|");
  const second = value.indexOf("|", first + 1);
  const tieKey = value.slice(first + 1, second < 0 ? undefined : second);
  return {
    version: Number(value.slice(0, first)),
    member: `${tieKey}|${userId}`,
    username: second < 0 ? userId : value.slice(second + 1),
    value,
  };
}

/** A state reconciliation sets (see APPLY_SCRIPT's mode 2). */
export interface RepairState extends ScoreState {
  /** A stored version PostgreSQL never made: overwritten although it is newer. */
  replaces?: number;
}

/** One member of a board with its score. */
export interface BoardEntry {
  member: string;
  userId: string;
  score: number;
}

// Newer version wins: a redelivered or out-of-order event is a no-op, so the
// consumer can ack after this and never double-count or move a score back.
// Many users per call, with one command per key for the whole chunk: a
// rebuild moves a million users, and per-user calls spend their time on
// overhead, not on the data. Within a chunk the newest state of a user wins.
// KEYS = USERS (or a period board's hash), then the boards; ARGV = mode,
// expire-at (unix seconds for every key, 0 for none), then user, version,
// score, tie key, username per user (username "" for period boards, whose
// hash keeps none). Modes: '0' newer wins (events, rebuilds); '1' force, no
// version check; '2' repair (reconciliation): an equal version wins too, so
// a corrupted entry is rewritten, and each user carries a sixth argument, a
// stored version PostgreSQL never made that may be overwritten ('-1' for
// none). Checked here, atomically: a repair computed from an older read
// never rolls back a version an event stored meanwhile. '3' is an event's
// apply: newer wins as in '0', and the last key is REGION_BOARDS, the set
// of every region board: the boards given are recorded there, and a user
// who moved region (or lost one) leaves every other region board, in the
// same step (the region boards share the {sb} slot). Modes 0, 1 and 3
// return how many users changed, mode 2 which.
const APPLY_SCRIPT = `
${NEWER_STATES_LUA}
for _, user in ipairs(order) do
  local b = best[user].at
  local tieKey = ARGV[b + 4]
  local name = ARGV[b + 5]
  local value = ARGV[b + 2] .. '|' .. tieKey
  if name ~= '' then value = value .. '|' .. name end
  fields[#fields + 1] = user; fields[#fields + 1] = value
  local member = tieKey .. '|' .. user
  adds[#adds + 1] = ARGV[b + 3]; adds[#adds + 1] = member
  local oldTieKey = best[user].old and string.match(best[user].old, '^%d+|(%d+)')
  if oldTieKey and oldTieKey .. '|' .. user ~= member then removes[#removes + 1] = oldTieKey .. '|' .. user end
end
redis.call('HSET', KEYS[1], unpack(fields))
local lastBoard = mode == '3' and #KEYS - 1 or #KEYS
for k = 2, lastBoard do
  if #removes > 0 then redis.call('ZREM', KEYS[k], unpack(removes)) end
  redis.call('ZADD', KEYS[k], unpack(adds))
end
if mode == '3' then
  local registry, mine, leaving = KEYS[#KEYS], {}, {}
  for k = 2, lastBoard do
    mine[KEYS[k]] = true
    if string.find(KEYS[k], ':board:region:', 1, true) then redis.call('SADD', registry, KEYS[k]) end
  end
  for i = 2, #adds, 2 do leaving[#leaving + 1] = adds[i] end
  for _, member in ipairs(removes) do leaving[#leaving + 1] = member end
  for _, board in ipairs(redis.call('SMEMBERS', registry)) do
    if not mine[board] then redis.call('ZREM', board, unpack(leaving)) end
  end
end
if expireAt > 0 then
  for k = 1, #KEYS do redis.call('EXPIREAT', KEYS[k], expireAt) end
end
return mode == '2' and order or #order
`;
const APPLY_CHUNK = 1_000;

// KEYS = a board's hash (USERS or the period board's), the board; ARGV =
// member, user and the user's hash value as read, per orphan. The member
// leaves the board; the user's field goes too if it still holds that value
// ('' keeps it): a field PostgreSQL never made would make the user's first
// real event look stale. Returns the members it removed.
const REMOVE_SCRIPT = `
local removed = {}
for i = 1, #ARGV, 3 do
  if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then removed[#removed + 1] = ARGV[i] end
  if ARGV[i + 2] ~= '' and redis.call('HGET', KEYS[1], ARGV[i + 1]) == ARGV[i + 2] then
    redis.call('HDEL', KEYS[1], ARGV[i + 1])
  end
end
return removed
`;

/** APPLY_SCRIPT's modes: newer wins, force, repair, an event's apply. */
type ApplyMode = "0" | "1" | "2" | "3";
type ApplyReply = number | string[];

// One user's entry in one round trip (GetRank is the hot read): the member
// from the user's hash, its rank and score, and the profile for the name.
// KEYS: the board's users hash, the board, USERS. ARGV: the user id.
const RANK_SCRIPT = `
local own = redis.call('HGET', KEYS[1], ARGV[1])
if not own then return false end
local first = string.find(own, '|', 1, true)
local second = string.find(own, '|', first + 1, true)
local tie = second and string.sub(own, first + 1, second - 1) or string.sub(own, first + 1)
local member = tie .. '|' .. ARGV[1]
local rank = redis.call('ZREVRANK', KEYS[2], member)
if not rank then return false end
local profile = own
if KEYS[3] ~= KEYS[1] then profile = redis.call('HGET', KEYS[3], ARGV[1]) end
return {rank, redis.call('ZSCORE', KEYS[2], member), profile}
`;

type RedisWithScripts = Redis & {
  applyScores(...args: (string | number)[]): Promise<ApplyReply>;
  removeEntries(...args: (string | number)[]): Promise<string[]>;
  rankOfUser(...args: string[]): Promise<[number, string, string | null] | null>;
};

const changedCount = (replies: ApplyReply[]) => replies.reduce<number>((sum, r) => sum + (typeof r === "number" ? r : r.length), 0);
const changedUsers = (replies: ApplyReply[]) => replies.flatMap((r) => (typeof r === "number" ? [] : r));
/** A SCAN pattern matching `literal` exactly (the hash tag's braces included). */
const globEscape = (literal: string) => literal.replace(/[\\*?[\]{}]/g, "\\$&");

export class RedisBoards implements Boards {
  private readonly redis: RedisWithScripts;
  /** Defined boards' seasons on the same connection (rebuilds and reconciliation cover both). */
  readonly defined: RedisDefinedBoards;

  constructor(
    redis: Redis,
    readonly retention: PeriodRetention = DEFAULT_RETENTION_MS,
  ) {
    redis.defineCommand("applyScores", { lua: APPLY_SCRIPT });
    redis.defineCommand("removeEntries", { lua: REMOVE_SCRIPT });
    redis.defineCommand("rankOfUser", { lua: RANK_SCRIPT, numberOfKeys: 3 });
    this.redis = redis as RedisWithScripts;
    this.defined = new RedisDefinedBoards(redis);
  }

  /** An event's state on its boards (global and the user's region); the user leaves any other region board. */
  async apply(state: ScoreState, boards: string[]): Promise<boolean> {
    return changedCount(await this.run([USERS, ...boards.map(boardKey), REGION_BOARDS], [state], "3", true, 0)) === 1;
  }

  /** Applies many states, a chunk per script call (rebuilds); newer wins, as in apply(). */
  async applyMany(states: ScoreState[], boards: string[], force = false): Promise<number> {
    const regionBoards = boards.filter((b) => b.startsWith("region:")).map(boardKey);
    if (regionBoards.length > 0) await this.redis.sadd(REGION_BOARDS, ...regionBoards);
    return changedCount(await this.run([USERS, ...boards.map(boardKey)], states, force ? "1" : "0", true, 0));
  }

  async applyPeriods(state: ScoreState, periods: PeriodTotal[]): Promise<string[]> {
    const changed = await Promise.all(
      periods.map(async ({ board, score }) => ((await this.applyPeriodMany(board, [{ ...state, score }])) > 0 ? board : undefined)),
    );
    return changed.filter((board): board is string => board !== undefined);
  }

  /**
   * Applies many users' totals on one period board (events and rebuilds).
   * A board past its retention is left alone: a late redelivery must not
   * bring an expired board back.
   */
  async applyPeriodMany(board: string, states: ScoreState[]): Promise<number> {
    const expireAtS = this.expireAtS(board);
    if (expireAtS === undefined || states.length === 0) return 0;
    return changedCount(await this.run([periodUsersKey(board), boardKey(board)], states, "0", false, expireAtS));
  }

  /**
   * Reconciliation's repair: sets each state on all of the user's boards
   * unless Redis holds a newer version (an equal one is rewritten; see
   * RepairState.replaces). Returns the users it changed.
   */
  async repair(states: RepairState[], boards: string[]): Promise<string[]> {
    return changedUsers(await this.run([USERS, ...boards.map(boardKey)], states, "2", true, 0));
  }

  /** repair() for users' totals on one period board; a board past its retention is left alone. */
  async repairPeriod(board: string, states: RepairState[]): Promise<string[]> {
    const expireAtS = this.expireAtS(board);
    if (expireAtS === undefined || states.length === 0) return [];
    return changedUsers(await this.run([periodUsersKey(board), boardKey(board)], states, "2", false, expireAtS));
  }

  /** When a period board expires (unix seconds); undefined once it has. */
  private expireAtS(board: string): number | undefined {
    const period = parsePeriodBoard(board);
    if (!period) throw new Error(`not a period board: ${board}`);
    const expireAtS = Math.ceil(expiresAtMs(period, this.retention) / 1000);
    return expireAtS * 1000 <= Date.now() ? undefined : expireAtS;
  }

  private async run(keys: string[], states: RepairState[], mode: ApplyMode, withNames: boolean, expireAtS: number): Promise<ApplyReply[]> {
    const calls: Promise<ApplyReply>[] = [];
    for (let i = 0; i < states.length; i += APPLY_CHUNK) {
      const args: (string | number)[] = [mode, expireAtS];
      for (const s of states.slice(i, i + APPLY_CHUNK)) {
        args.push(s.userId, s.version, s.score, tieKeyOf(s.reachedAtMs), withNames ? s.username : "");
        if (mode === "2") args.push(s.replaces ?? -1);
      }
      calls.push(this.redis.applyScores(keys.length, ...keys, ...args));
    }
    return Promise.all(calls);
  }

  /** Scores of these users on a board, null where absent. */
  async scoresOf(board: string, userIds: string[]): Promise<(number | null)[]> {
    return this.scoresOfMembers(
      board,
      (await this.storedOf(board, userIds)).map((s) => s?.member),
    );
  }

  /** What the hash a board keeps its members in (USERS or the period board's) holds per user. */
  async storedOf(board: string, userIds: string[]): Promise<(StoredUser | undefined)[]> {
    if (userIds.length === 0) return [];
    const stored = await this.redis.hmget(this.hashOf(board), ...userIds);
    return userIds.map((userId, i) => parseStored(userId, stored[i] ?? null));
  }

  /** Scores of these members on a board, null where absent (or no member is given). */
  async scoresOfMembers(board: string, members: (string | undefined)[]): Promise<(number | null)[]> {
    if (members.length === 0) return [];
    const scores = await this.redis.zmscore(boardKey(board), ...members.map((m) => m ?? "\u0000absent"));
    return scores.map((s) => (s === null ? null : Number(s)));
  }

  /** Every entry of a board, in batches (reconciliation); an entry may come twice. */
  async *entries(board: string): AsyncGenerator<BoardEntry[]> {
    let cursor = "0";
    do {
      const [next, flat] = await this.redis.zscan(boardKey(board), cursor, "COUNT", 1000);
      cursor = next;
      const batch: BoardEntry[] = [];
      for (let i = 0; i < flat.length; i += 2) batch.push({ member: flat[i]!, userId: userIdOf(flat[i]!), score: Number(flat[i + 1]) });
      if (batch.length > 0) yield batch;
    } while (cursor !== "0");
  }

  /**
   * Removes members from a board; with `value`, the user's field in the
   * board's hash goes too if it still holds that value (see REMOVE_SCRIPT).
   * Returns the members that were there.
   */
  async removeEntries(board: string, orphans: { member: string; userId: string; value?: string }[]): Promise<string[]> {
    const removed: string[] = [];
    for (let i = 0; i < orphans.length; i += APPLY_CHUNK) {
      const args = orphans.slice(i, i + APPLY_CHUNK).flatMap((o) => [o.member, o.userId, o.value ?? ""]);
      removed.push(...(await this.redis.removeEntries(2, this.hashOf(board), boardKey(board), ...args)));
    }
    return removed;
  }

  /** The names of the boards in Redis that start with `prefix` ("region:"). */
  async boardsNamed(prefix: string): Promise<string[]> {
    const found = new Set<string>();
    const pattern = `${globEscape(boardKey(prefix))}*`;
    let cursor = "0";
    do {
      const [next, keys] = await this.redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      cursor = next;
      for (const key of keys) found.add(key.slice(boardKey("").length));
    } while (cursor !== "0");
    return [...found].sort();
  }

  async page(board: string, offset: number, limit: number): Promise<RankedEntry[]> {
    const flat = await this.redis.zrevrange(boardKey(board), offset, offset + limit - 1, "WITHSCORES");
    const userIds: string[] = [];
    const scores: number[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      userIds.push(userIdOf(flat[i] as string));
      scores.push(Number(flat[i + 1]));
    }
    if (userIds.length === 0) return [];
    const stored = await this.redis.hmget(USERS, ...userIds);
    return userIds.map((userId, i) => ({
      rank: offset + i + 1,
      userId,
      username: parseStored(userId, stored[i] ?? null)?.username ?? userId,
      score: scores[i] ?? 0,
    }));
  }

  async rankOf(board: string, userId: string): Promise<RankedEntry | undefined> {
    const found = await this.redis.rankOfUser(this.hashOf(board), boardKey(board), USERS, userId);
    if (!found) return undefined;
    const [rank, score, profile] = found;
    return { rank: rank + 1, userId, username: parseStored(userId, profile)?.username ?? userId, score: Number(score) };
  }

  private hashOf(board: string): string {
    return parsePeriodBoard(board) ? periodUsersKey(board) : USERS;
  }
}

import type { Redis } from "ioredis";
import { DEFAULT_RETENTION_MS, expiresAtMs, parsePeriodBoard, type PeriodRetention } from "@scoreboard/platform/periods";

export interface RankedEntry {
  rank: number;
  userId: string;
  username: string;
  score: number;
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
const VERSIONS = "{sb}:versions";
const NAMES = "{sb}:names";
/** user id → its current sorted-set member. */
const MEMBERS = "{sb}:members";
export const boardKey = (board: string) => `{sb}:board:${board}`;
// A period board keeps its own versions and members: a user's member on
// yesterday's board (when they reached yesterday's total) is not their member
// today, and all three keys expire together after the retention.
const periodVersionsKey = (board: string) => `{sb}:pversions:${board}`;
const periodMembersKey = (board: string) => `{sb}:pmembers:${board}`;
const membersKeyOf = (board: string) => (parsePeriodBoard(board) ? periodMembersKey(board) : MEMBERS);

// Ties: a sorted set orders equal scores by member bytes, and ZREVRANGE
// reverses that. A member is "<13 digits of (MAX - reached at ms)>|<user id>",
// so among equal scores whoever reached the score first comes first (then,
// within one millisecond, the greater user id). Limits: reached-at times are
// kept to the millisecond, until the year 2286.
const TIME_MAX = 9_999_999_999_999;
export function memberOf(userId: string, reachedAtMs: number): string {
  return `${String(TIME_MAX - Math.max(0, Math.min(TIME_MAX, Math.trunc(reachedAtMs)))).padStart(13, "0")}|${userId}`;
}
export function userIdOf(member: string): string {
  return member.slice(member.indexOf("|") + 1);
}

// Newer version wins: a redelivered or out-of-order event is a no-op, so the
// consumer can ack after this and never double-count or move a score back.
// Many users per call, with one command per key for the whole chunk: a
// rebuild moves a million users, and per-user calls spend their time on
// overhead, not on the data. Within a chunk the newest state of a user wins.
const APPLY_SCRIPT = `
local n = #ARGV / 5
local users = {}
for i = 1, n do users[i] = ARGV[(i - 1) * 5 + 1] end
local stored = redis.call('HMGET', KEYS[1], unpack(users))
local oldMembers = redis.call('HMGET', KEYS[3], unpack(users))
local best, order = {}, {}
for i = 1, n do
  local user = users[i]
  local version = tonumber(ARGV[(i - 1) * 5 + 2])
  local floor = best[user] and best[user].version or tonumber(stored[i] or '0') or 0
  if version > floor then
    if not best[user] then order[#order + 1] = user end
    best[user] = { version = version, at = i, old = oldMembers[i] }
  end
end
if #order == 0 then return 0 end
local versions, names, members, adds, removes = {}, {}, {}, {}, {}
for _, user in ipairs(order) do
  local b = (best[user].at - 1) * 5
  local member = ARGV[b + 5]
  versions[#versions + 1] = user; versions[#versions + 1] = ARGV[b + 2]
  names[#names + 1] = user; names[#names + 1] = ARGV[b + 4]
  members[#members + 1] = user; members[#members + 1] = member
  adds[#adds + 1] = ARGV[b + 3]; adds[#adds + 1] = member
  local old = best[user].old
  if old and old ~= member then removes[#removes + 1] = old end
end
redis.call('HSET', KEYS[1], unpack(versions))
redis.call('HSET', KEYS[2], unpack(names))
redis.call('HSET', KEYS[3], unpack(members))
for k = 4, #KEYS do
  if #removes > 0 then redis.call('ZREM', KEYS[k], unpack(removes)) end
  redis.call('ZADD', KEYS[k], unpack(adds))
end
return #order
`;
const APPLY_CHUNK = 1_000;

// The same rule for one period board: KEYS = board, its versions, its
// members; ARGV = expire-at (unix seconds), then user, version, score,
// member per user.
const APPLY_PERIOD_SCRIPT = `
local n = (#ARGV - 1) / 4
local users = {}
for i = 1, n do users[i] = ARGV[(i - 1) * 4 + 2] end
local stored = redis.call('HMGET', KEYS[2], unpack(users))
local oldMembers = redis.call('HMGET', KEYS[3], unpack(users))
local best, order = {}, {}
for i = 1, n do
  local user = users[i]
  local version = tonumber(ARGV[(i - 1) * 4 + 3])
  local floor = best[user] and best[user].version or tonumber(stored[i] or '0') or 0
  if version > floor then
    if not best[user] then order[#order + 1] = user end
    best[user] = { version = version, at = i, old = oldMembers[i] }
  end
end
if #order == 0 then return 0 end
local versions, members, adds, removes = {}, {}, {}, {}
for _, user in ipairs(order) do
  local b = (best[user].at - 1) * 4 + 1
  local member = ARGV[b + 4]
  versions[#versions + 1] = user; versions[#versions + 1] = ARGV[b + 2]
  members[#members + 1] = user; members[#members + 1] = member
  adds[#adds + 1] = ARGV[b + 3]; adds[#adds + 1] = member
  local old = best[user].old
  if old and old ~= member then removes[#removes + 1] = old end
end
redis.call('HSET', KEYS[2], unpack(versions))
redis.call('HSET', KEYS[3], unpack(members))
if #removes > 0 then redis.call('ZREM', KEYS[1], unpack(removes)) end
redis.call('ZADD', KEYS[1], unpack(adds))
for k = 1, 3 do redis.call('EXPIREAT', KEYS[k], ARGV[1]) end
return #order
`;

type RedisWithScripts = Redis & {
  applyScores(...args: (string | number)[]): Promise<number>;
  applyPeriodScores(...args: (string | number)[]): Promise<number>;
};

export class RedisBoards implements Boards {
  private readonly redis: RedisWithScripts;

  constructor(
    redis: Redis,
    private readonly retention: PeriodRetention = DEFAULT_RETENTION_MS,
  ) {
    redis.defineCommand("applyScores", { lua: APPLY_SCRIPT });
    redis.defineCommand("applyPeriodScores", { lua: APPLY_PERIOD_SCRIPT });
    this.redis = redis as RedisWithScripts;
  }

  async apply(state: ScoreState, boards: string[]): Promise<boolean> {
    return (await this.applyMany([state], boards)) === 1;
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
    const period = parsePeriodBoard(board);
    if (!period) throw new Error(`not a period board: ${board}`);
    const expireAtS = Math.ceil(expiresAtMs(period, this.retention) / 1000);
    if (expireAtS * 1000 <= Date.now() || states.length === 0) return 0;
    const keys = [boardKey(board), periodVersionsKey(board), periodMembersKey(board)];
    const calls: Promise<number>[] = [];
    for (let i = 0; i < states.length; i += APPLY_CHUNK) {
      const args: (string | number)[] = [expireAtS];
      for (const s of states.slice(i, i + APPLY_CHUNK)) {
        args.push(s.userId, s.version, s.score, memberOf(s.userId, s.reachedAtMs));
      }
      calls.push(this.redis.applyPeriodScores(keys.length, ...keys, ...args));
    }
    return (await Promise.all(calls)).reduce((sum, n) => sum + n, 0);
  }

  /** Applies many states, a chunk per script call (rebuilds); same version rule as apply(). */
  async applyMany(states: ScoreState[], boards: string[], force = false): Promise<number> {
    const keys = [VERSIONS, NAMES, MEMBERS, ...boards.map(boardKey)];
    const calls: Promise<number>[] = [];
    for (let i = 0; i < states.length; i += APPLY_CHUNK) {
      const args: (string | number)[] = [];
      for (const s of states.slice(i, i + APPLY_CHUNK)) {
        // A forced write passes the version check by claiming a version above any real one.
        args.push(s.userId, force ? Number.MAX_SAFE_INTEGER : s.version, s.score, s.username, memberOf(s.userId, s.reachedAtMs));
      }
      calls.push(this.redis.applyScores(keys.length, ...keys, ...args));
    }
    return (await Promise.all(calls)).reduce((sum, n) => sum + n, 0);
  }

  /** Sets states as given, whatever version Redis holds (reconciliation's repair). */
  async overwrite(states: ScoreState[], boards: string[]): Promise<void> {
    await this.applyMany(states, boards, true);
    // Put the real versions back, so later events apply as usual.
    const pipeline = this.redis.pipeline();
    for (const s of states) pipeline.hset(VERSIONS, s.userId, s.version);
    for (const [err] of (await pipeline.exec()) ?? []) if (err) throw err;
  }

  /** Scores of these users on a board, null where absent. */
  async scoresOf(board: string, userIds: string[]): Promise<(number | null)[]> {
    if (userIds.length === 0) return [];
    const members = await this.redis.hmget(MEMBERS, ...userIds);
    const present = members.map((m) => m ?? "\u0000absent");
    const scores = await this.redis.zmscore(boardKey(board), ...present);
    return scores.map((s) => (s === null ? null : Number(s)));
  }

  /** Every user on a board, in batches, for reconciliation. */
  async *members(board: string): AsyncGenerator<string[]> {
    let cursor = "0";
    do {
      const [next, flat] = await this.redis.zscan(boardKey(board), cursor, "COUNT", 1000);
      cursor = next;
      const users: string[] = [];
      for (let i = 0; i < flat.length; i += 2) users.push(userIdOf(flat[i]!));
      if (users.length > 0) yield users;
    } while (cursor !== "0");
  }

  async remove(board: string, userIds: string[]): Promise<void> {
    if (userIds.length === 0) return;
    const members = (await this.redis.hmget(MEMBERS, ...userIds)).filter((m): m is string => m !== null);
    if (members.length > 0) await this.redis.zrem(boardKey(board), ...members);
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
    const names = await this.redis.hmget(NAMES, ...userIds);
    return userIds.map((userId, i) => ({
      rank: offset + i + 1,
      userId,
      username: names[i] ?? userId,
      score: scores[i] ?? 0,
    }));
  }

  async rankOf(board: string, userId: string): Promise<RankedEntry | undefined> {
    const [member, name] = await Promise.all([this.redis.hget(membersKeyOf(board), userId), this.redis.hget(NAMES, userId)]);
    if (!member) return undefined;
    const [rank, score] = await Promise.all([this.redis.zrevrank(boardKey(board), member), this.redis.zscore(boardKey(board), member)]);
    if (rank === null || score === null) return undefined;
    return { rank: rank + 1, userId, username: name ?? userId, score: Number(score) };
  }
}

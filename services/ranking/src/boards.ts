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
// A period board keeps its own "<version>|<tie key>" per user: a user's
// member on yesterday's board (when they reached yesterday's total) is not
// their member today; the hash and the board expire together.
const periodUsersKey = (board: string) => `{sb}:pusers:${board}`;

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

/** A USERS or period hash value, split. */
interface StoredUser {
  version: number;
  member: string;
  username: string;
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
  };
}

// Newer version wins: a redelivered or out-of-order event is a no-op, so the
// consumer can ack after this and never double-count or move a score back.
// Many users per call, with one command per key for the whole chunk: a
// rebuild moves a million users, and per-user calls spend their time on
// overhead, not on the data. Within a chunk the newest state of a user wins.
// KEYS = USERS (or a period board's hash), then the boards; ARGV = force
// (1: skip the version check, reconciliation's repair), expire-at (unix
// seconds for every key, 0 for none), then user, version, score, tie key,
// username per user (username "" for period boards, whose hash keeps none).
const APPLY_SCRIPT = `
local force = ARGV[1] == '1'
local expireAt = tonumber(ARGV[2])
local n = (#ARGV - 2) / 5
local users = {}
for i = 1, n do users[i] = ARGV[(i - 1) * 5 + 3] end
local stored = redis.call('HMGET', KEYS[1], unpack(users))
local best, order = {}, {}
for i = 1, n do
  local user = users[i]
  local version = tonumber(ARGV[(i - 1) * 5 + 4])
  local floor
  if best[user] then
    floor = best[user].version
  elseif force or not stored[i] then
    floor = -1
  else
    floor = tonumber(string.match(stored[i], '^(%d+)|')) or 0
  end
  if version > floor then
    if not best[user] then order[#order + 1] = user end
    best[user] = { version = version, at = i, old = stored[i] }
  end
end
if #order == 0 then return 0 end
local fields, adds, removes = {}, {}, {}
for _, user in ipairs(order) do
  local b = (best[user].at - 1) * 5 + 2
  local tieKey = ARGV[b + 4]
  local name = ARGV[b + 5]
  local value = ARGV[b + 2] .. '|' .. tieKey
  if name ~= '' then value = value .. '|' .. name end
  fields[#fields + 1] = user; fields[#fields + 1] = value
  local member = tieKey .. '|' .. user
  adds[#adds + 1] = ARGV[b + 3]; adds[#adds + 1] = member
  local old = best[user].old
  if old then
    local oldMember = string.match(old, '^%d+|(%d+)') .. '|' .. user
    if oldMember ~= member then removes[#removes + 1] = oldMember end
  end
end
redis.call('HSET', KEYS[1], unpack(fields))
for k = 2, #KEYS do
  if #removes > 0 then redis.call('ZREM', KEYS[k], unpack(removes)) end
  redis.call('ZADD', KEYS[k], unpack(adds))
end
if expireAt > 0 then
  for k = 1, #KEYS do redis.call('EXPIREAT', KEYS[k], expireAt) end
end
return #order
`;
const APPLY_CHUNK = 1_000;

type RedisWithScripts = Redis & {
  applyScores(...args: (string | number)[]): Promise<number>;
};

export class RedisBoards implements Boards {
  private readonly redis: RedisWithScripts;

  constructor(
    redis: Redis,
    private readonly retention: PeriodRetention = DEFAULT_RETENTION_MS,
  ) {
    redis.defineCommand("applyScores", { lua: APPLY_SCRIPT });
    this.redis = redis as RedisWithScripts;
  }

  async apply(state: ScoreState, boards: string[]): Promise<boolean> {
    return (await this.applyMany([state], boards)) === 1;
  }

  /** Applies many states, a chunk per script call (rebuilds); same version rule as apply(). */
  async applyMany(states: ScoreState[], boards: string[], force = false): Promise<number> {
    return this.run([USERS, ...boards.map(boardKey)], states, { force, withNames: true, expireAtS: 0 });
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
    return this.run([periodUsersKey(board), boardKey(board)], states, { force: false, withNames: false, expireAtS });
  }

  private async run(
    keys: string[],
    states: ScoreState[],
    { force, withNames, expireAtS }: { force: boolean; withNames: boolean; expireAtS: number },
  ): Promise<number> {
    const calls: Promise<number>[] = [];
    for (let i = 0; i < states.length; i += APPLY_CHUNK) {
      const args: (string | number)[] = [force ? "1" : "0", expireAtS];
      for (const s of states.slice(i, i + APPLY_CHUNK)) {
        args.push(s.userId, s.version, s.score, tieKeyOf(s.reachedAtMs), withNames ? s.username : "");
      }
      calls.push(this.redis.applyScores(keys.length, ...keys, ...args));
    }
    return (await Promise.all(calls)).reduce((sum, n) => sum + n, 0);
  }

  /** Sets states as given, whatever version Redis holds (reconciliation's repair). */
  async overwrite(states: ScoreState[], boards: string[]): Promise<void> {
    await this.applyMany(states, boards, true);
  }

  /** Scores of these users on a board, null where absent. */
  async scoresOf(board: string, userIds: string[]): Promise<(number | null)[]> {
    if (userIds.length === 0) return [];
    const members = await this.membersOf(board, userIds);
    const scores = await this.redis.zmscore(boardKey(board), ...members.map((m) => m ?? "\u0000absent"));
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
    const members = (await this.membersOf(board, userIds)).filter((m): m is string => m !== undefined);
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
    const stored = await this.redis.hmget(USERS, ...userIds);
    return userIds.map((userId, i) => ({
      rank: offset + i + 1,
      userId,
      username: parseStored(userId, stored[i] ?? null)?.username ?? userId,
      score: scores[i] ?? 0,
    }));
  }

  async rankOf(board: string, userId: string): Promise<RankedEntry | undefined> {
    const period = parsePeriodBoard(board) !== undefined;
    const [own, profile] = await Promise.all([
      this.redis.hget(period ? periodUsersKey(board) : USERS, userId),
      period ? this.redis.hget(USERS, userId) : Promise.resolve(null),
    ]);
    const stored = parseStored(userId, own);
    if (!stored) return undefined;
    const [rank, score] = await Promise.all([this.redis.zrevrank(boardKey(board), stored.member), this.redis.zscore(boardKey(board), stored.member)]);
    if (rank === null || score === null) return undefined;
    const username = period ? (parseStored(userId, profile)?.username ?? userId) : stored.username;
    return { rank: rank + 1, userId, username, score: Number(score) };
  }

  /** Each user's member on a board (undefined where unknown). */
  private async membersOf(board: string, userIds: string[]): Promise<(string | undefined)[]> {
    const key = parsePeriodBoard(board) ? periodUsersKey(board) : USERS;
    const stored = await this.redis.hmget(key, ...userIds);
    return userIds.map((userId, i) => parseStored(userId, stored[i] ?? null)?.member);
  }
}

import type { Redis } from "ioredis";
import { parseMember, tieKeyOf, type BoardShape, type DefinedEntry, type Position, type RankedDefinedEntry } from "./entries.js";
import { NEWER_STATES_LUA } from "../newer-states.js";

// Defined boards in Redis, beside the seed boards under the same hash tag
// (one Redis Cluster slot, so a script may touch any of them). Per (board,
// season):
// - the sorted set {sb}:dboard:<board>:<season> of "<tie key>|<user id>"
//   (entries.ts: Redis order is board order);
// - the hash {sb}:dusers:<board>:<season>, user id -> "<version>|<tie key>|
//   <subscore>|<name length>|<name><metadata>": the version rule and the
//   member to replace read its first two fields, the rest is what a read
//   shows. The name comes with every submission's event: a user who only
//   submits to defined boards has no entry in USERS;
// - the marker {sb}:dseason:<board>:<season>, set once the season was loaded
//   from PostgreSQL. Events alone never prove a season is complete, so a
//   season without its marker is read from PostgreSQL and loaded.
// All three expire together at the season's expiry: every write sets it on
// all of them.
// Board ids and season ids hold no ":", so keys cannot collide.
export const entriesKey = (boardId: string, season: string) => `{sb}:dboard:${boardId}:${season}`;
export const usersKey = (boardId: string, season: string) => `{sb}:dusers:${boardId}:${season}`;
export const loadedKey = (boardId: string, season: string) => `{sb}:dseason:${boardId}:${season}`;
const keysOf = (boardId: string, season: string) => [usersKey(boardId, season), entriesKey(boardId, season), loadedKey(boardId, season)];

/** A season's entry as an event or PostgreSQL says it. */
export interface SeasonEntry extends DefinedEntry {
  boardId: string;
  season: string;
}

/** A state reconciliation sets: `replaces` is a stored version PostgreSQL never made (overwritten although newer). */
export interface RepairEntry extends DefinedEntry {
  replaces?: number;
}

/** A page, rank or entries read of a season whose marker is missing: Redis cannot answer it. */
export const NOT_LOADED = Symbol("season not loaded");
export type NotLoaded = typeof NOT_LOADED;

export interface EntryPage {
  entries: RankedDefinedEntry[];
  /** Entries in the season. */
  total: number;
}

/** What Redis holds for a user: the stored hash value's version and member. */
export interface StoredEntry {
  version: number;
  member: string;
  score: number | null;
}

// Newer version wins, many users per call. KEYS = users hash, sorted set,
// marker. ARGV = mode, expire-at (unix seconds; 0 for none), then per user:
// user, version, score, tie key, the rest of the hash value (subscore, name,
// metadata), and in mode '2' a stored version PostgreSQL never made ('-1'
// for none). Modes: '0' newer wins (events, loads); '2' repair: an equal
// version wins too, and so does the version to replace, checked here so a
// repair computed from an older read never rolls back an event's newer
// version. Returns how many users changed (mode 2: which).
const APPLY_SCRIPT = `
${NEWER_STATES_LUA}
for _, user in ipairs(order) do
  local b = best[user].at
  local tieKey = ARGV[b + 4]
  fields[#fields + 1] = user
  fields[#fields + 1] = ARGV[b + 2] .. '|' .. tieKey .. '|' .. ARGV[b + 5]
  local member = tieKey .. '|' .. user
  adds[#adds + 1] = ARGV[b + 3]; adds[#adds + 1] = member
  local oldTieKey = best[user].old and string.match(best[user].old, '^%d+|(%d+)|')
  if oldTieKey and oldTieKey .. '|' .. user ~= member then removes[#removes + 1] = oldTieKey .. '|' .. user end
end
redis.call('HSET', KEYS[1], unpack(fields))
if #removes > 0 then redis.call('ZREM', KEYS[2], unpack(removes)) end
redis.call('ZADD', KEYS[2], unpack(adds))
if expireAt > 0 then
  for k = 1, 3 do redis.call('EXPIREAT', KEYS[k], expireAt) end
end
return mode == '2' and order or #order
`;

// The read scripts share these: KEYS = users hash, sorted set, marker; the
// first ARGV is '1' for a descending board. Each returns false when the
// season is not loaded. Byte order is compared by hand: Lua's string
// comparison follows the server's locale (Redis sets LC_COLLATE from the
// environment), the sorted set's is memcmp.
const READ_PRELUDE = `
if redis.call('EXISTS', KEYS[3]) == 0 then return false end
local desc = ARGV[1] == '1'
local function range(first, last)
  if desc then return redis.call('ZREVRANGE', KEYS[2], first, last, 'WITHSCORES') end
  return redis.call('ZRANGE', KEYS[2], first, last, 'WITHSCORES')
end
local function rankOf(member)
  if desc then return redis.call('ZREVRANK', KEYS[2], member) end
  return redis.call('ZRANK', KEYS[2], member)
end
local function valuesOf(flat)
  if #flat == 0 then return {} end
  local users = {}
  for i = 1, #flat, 2 do users[#users + 1] = string.sub(flat[i], string.find(flat[i], '|', 1, true) + 1) end
  return redis.call('HMGET', KEYS[1], unpack(users))
end
local function memberOf(user, value)
  local tie = value and string.match(value, '^%d+|(%d+)|')
  return tie and (tie .. '|' .. user)
end
`;

// A page after a position (keyset): ARGV = desc, limit, then the position's
// score and member, or nothing for the first page. The page starts strictly
// after that position even when the entry that made it moved or left: the
// entries of equal score form one block of the ascending order, found by
// ZCOUNT, and a binary search over its ranks finds where the member would
// be. Returns {total, first index in reading order, members and scores,
// hash values}.
const PAGE_SCRIPT = `${READ_PRELUDE}
local limit = tonumber(ARGV[2])
local total = redis.call('ZCARD', KEYS[2])
local start = 0
if ARGV[3] then
  local score, member = ARGV[3], ARGV[4]
  local function before(a, b)
    local n = math.min(#a, #b)
    for i = 1, n do
      local x, y = string.byte(a, i), string.byte(b, i)
      if x ~= y then return x < y end
    end
    return #a < #b
  end
  -- lo: ascending rank of the first member of the block at or past the position
  -- (desc: members >= it come before it in reading order; asc: members > it come after).
  local lo
  local at = redis.call('ZSCORE', KEYS[2], member)
  if at and tonumber(at) == tonumber(score) then
    lo = redis.call('ZRANK', KEYS[2], member)
    if not desc then lo = lo + 1 end
  else
    lo = redis.call('ZCOUNT', KEYS[2], '-inf', '(' .. score)
    local hi = lo + redis.call('ZCOUNT', KEYS[2], score, score)
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      local x = redis.call('ZRANGE', KEYS[2], mid, mid)[1]
      if before(x, member) then lo = mid + 1 else hi = mid end
    end
  end
  if desc then start = total - lo else start = lo end
end
local flat = {}
if start < total then flat = range(start, start + limit - 1) end
return {total, start, flat, valuesOf(flat)}
`;

// A user's entry and `around` entries each side: ARGV = desc, user, around.
// Returns {total} when the user has no entry, else {total, first index,
// members and scores, hash values}.
const RANK_SCRIPT = `${READ_PRELUDE}
local total = redis.call('ZCARD', KEYS[2])
local member = memberOf(ARGV[2], redis.call('HGET', KEYS[1], ARGV[2]))
local rank = member and rankOf(member)
if not rank then return {total} end
local around = tonumber(ARGV[3])
local first = math.max(0, rank - around)
local flat = range(first, rank + around)
return {total, first, flat, valuesOf(flat)}
`;

// The entries of some users: ARGV = desc, user ids. Returns {total, then per
// user with an entry: user, rank, score, hash value}.
const ENTRIES_SCRIPT = `${READ_PRELUDE}
local users = {}
for i = 2, #ARGV do users[#users + 1] = ARGV[i] end
local values = redis.call('HMGET', KEYS[1], unpack(users))
local out = {redis.call('ZCARD', KEYS[2])}
for i, user in ipairs(users) do
  local member = memberOf(user, values[i])
  local rank = member and rankOf(member)
  if rank then
    out[#out + 1] = user; out[#out + 1] = rank
    out[#out + 1] = redis.call('ZSCORE', KEYS[2], member); out[#out + 1] = values[i]
  end
end
return out
`;

// Reconciliation's removal of members PostgreSQL does not have. KEYS = users
// hash, sorted set; ARGV = member, user per orphan. The user's field goes
// too while it still names that member (an event may have replaced it since
// the sweep read it). Returns the members removed.
const REMOVE_SCRIPT = `
local removed = {}
for i = 1, #ARGV, 2 do
  if redis.call('ZREM', KEYS[2], ARGV[i]) == 1 then removed[#removed + 1] = ARGV[i] end
  local value = redis.call('HGET', KEYS[1], ARGV[i + 1])
  local tie = value and string.match(value, '^%d+|(%d+)|')
  if tie and tie .. '|' .. ARGV[i + 1] == ARGV[i] then redis.call('HDEL', KEYS[1], ARGV[i + 1]) end
end
return removed
`;

type Flat = [number, number, string[], (string | null)[]];
type RedisWithScripts = Redis & {
  applyDefinedEntries(...args: (string | number)[]): Promise<number | string[]>;
  definedPage(...args: (string | number)[]): Promise<Flat | null>;
  definedRank(...args: (string | number)[]): Promise<[number] | Flat | null>;
  definedEntries(...args: (string | number)[]): Promise<(string | number)[] | null>;
  removeDefinedEntries(...args: string[]): Promise<string[]>;
};

const APPLY_CHUNK = 1_000;

/** The hash value after "<version>|<tie key>|": subscore, name and metadata. */
function valueRest(entry: DefinedEntry): string {
  return `${entry.subscore}|${entry.username.length}|${entry.username}${entry.metadata}`;
}

/** An entry from its member, score and hash value. */
function entryOf(shape: BoardShape, member: string, score: number, value: string | null, rank: number): RankedDefinedEntry {
  const parts = parseMember(shape, member);
  const userId = parts?.userId ?? member.slice(member.indexOf("|") + 1);
  const fields = (value ?? "").split("|", 4);
  const version = Number(fields[0] ?? 0);
  // The rest: "<subscore>|<name length>|<name><metadata>".
  const restAt = (fields[0]?.length ?? 0) + (fields[1]?.length ?? 0) + 2;
  const subscoreEnd = value?.indexOf("|", restAt) ?? -1;
  const lengthEnd = subscoreEnd < 0 ? -1 : value!.indexOf("|", subscoreEnd + 1);
  const subscore = subscoreEnd < 0 ? 0 : Number(value!.slice(restAt, subscoreEnd));
  const nameLength = lengthEnd < 0 ? 0 : Number(value!.slice(subscoreEnd + 1, lengthEnd));
  const username = lengthEnd < 0 ? userId : value!.slice(lengthEnd + 1, lengthEnd + 1 + nameLength) || userId;
  const metadata = lengthEnd < 0 ? "" : value!.slice(lengthEnd + 1 + nameLength);
  return { rank, userId, username, score, subscore: parts?.subscore ?? subscore, reachedAtMs: parts?.reachedAtMs ?? 0, version, metadata };
}

function entriesOfFlat(shape: BoardShape, first: number, flat: string[], values: (string | null)[]): RankedDefinedEntry[] {
  const entries: RankedDefinedEntry[] = [];
  for (let i = 0; i < flat.length; i += 2) entries.push(entryOf(shape, flat[i]!, Number(flat[i + 1]), values[i / 2] ?? null, first + i / 2 + 1));
  return entries;
}

/** Defined boards' seasons in Redis: versioned applies and keyset reads, each one script call. */
export class RedisDefinedBoards {
  private readonly redis: RedisWithScripts;

  constructor(redis: Redis) {
    redis.defineCommand("applyDefinedEntries", { lua: APPLY_SCRIPT, numberOfKeys: 3 });
    redis.defineCommand("definedPage", { lua: PAGE_SCRIPT, numberOfKeys: 3 });
    redis.defineCommand("definedRank", { lua: RANK_SCRIPT, numberOfKeys: 3 });
    redis.defineCommand("definedEntries", { lua: ENTRIES_SCRIPT, numberOfKeys: 3 });
    redis.defineCommand("removeDefinedEntries", { lua: REMOVE_SCRIPT, numberOfKeys: 2 });
    this.redis = redis as RedisWithScripts;
  }

  /**
   * An event's entry, if its version is newer than the stored one (a
   * redelivered or older event changes nothing); true when it changed the
   * season. A season past its expiry is left alone: a late redelivery must
   * not bring it back.
   */
  async apply(shape: BoardShape, entry: SeasonEntry, expiresAt: Date | undefined, now = Date.now()): Promise<boolean> {
    return (await this.applyMany(shape, entry.season, [entry], expiresAt, now)) > 0;
  }

  /** Many entries of one season (loads), a chunk per script call; newer wins as in apply(). */
  async applyMany(shape: BoardShape, season: string, entries: DefinedEntry[], expiresAt: Date | undefined, now = Date.now()): Promise<number> {
    const replies = await this.run(shape, season, entries, "0", expiresAt, now);
    return replies.reduce<number>((sum, r) => sum + (typeof r === "number" ? r : r.length), 0);
  }

  /** Reconciliation's repair: sets each entry unless Redis holds a newer version (see APPLY_SCRIPT's mode 2); returns the users changed. */
  async repair(shape: BoardShape, season: string, entries: RepairEntry[], expiresAt: Date | undefined, now = Date.now()): Promise<string[]> {
    const replies = await this.run(shape, season, entries, "2", expiresAt, now);
    return replies.flatMap((r) => (typeof r === "number" ? [] : r));
  }

  /** Marks a season loaded from PostgreSQL (see loadedKey), expiring with it. */
  async markLoaded(boardId: string, season: string, expiresAt: Date | undefined): Promise<void> {
    const key = loadedKey(boardId, season);
    if (expiresAt) await this.redis.set(key, new Date().toISOString(), "PXAT", expiresAt.getTime());
    else await this.redis.set(key, new Date().toISOString());
  }

  private async run(shape: BoardShape, season: string, entries: RepairEntry[], mode: "0" | "2", expiresAt: Date | undefined, now: number) {
    if (entries.length === 0 || (expiresAt && expiresAt.getTime() <= now)) return [];
    const expireAtS = expiresAt ? Math.ceil(expiresAt.getTime() / 1000) : 0;
    const calls: Promise<number | string[]>[] = [];
    for (let i = 0; i < entries.length; i += APPLY_CHUNK) {
      const args: (string | number)[] = [mode, expireAtS];
      for (const e of entries.slice(i, i + APPLY_CHUNK)) {
        args.push(e.userId, e.version, e.score, tieKeyOf(shape, e.subscore, e.reachedAtMs), valueRest(e));
        if (mode === "2") args.push(e.replaces ?? -1);
      }
      calls.push(this.redis.applyDefinedEntries(...keysOf(shape.boardId, season), ...args));
    }
    return Promise.all(calls);
  }

  /** Up to `limit` entries strictly after `after` (from the top without one). */
  async page(shape: BoardShape, season: string, after: Position | undefined, limit: number): Promise<EntryPage | NotLoaded> {
    const position = after ? [after.score, after.member] : [];
    const found = await this.redis.definedPage(...keysOf(shape.boardId, season), desc(shape), limit, ...position);
    if (!found) return NOT_LOADED;
    const [total, first, flat, values] = found;
    return { total, entries: entriesOfFlat(shape, first, flat, values) };
  }

  /** A user's entry with up to `around` neighbours each side (the user's entry among them); entry undefined without one. */
  async around(shape: BoardShape, season: string, userId: string, around: number): Promise<{ entry?: RankedDefinedEntry; page: EntryPage } | NotLoaded> {
    const found = await this.redis.definedRank(...keysOf(shape.boardId, season), desc(shape), userId, around);
    if (!found) return NOT_LOADED;
    if (found.length === 1) return { page: { total: found[0], entries: [] } };
    const [total, first, flat, values] = found as Flat;
    const entries = entriesOfFlat(shape, first, flat, values);
    return { entry: entries.find((e) => e.userId === userId), page: { total, entries } };
  }

  /** The entries of these users, in rank order; users without one are left out. */
  async entriesOf(shape: BoardShape, season: string, userIds: string[]): Promise<EntryPage | NotLoaded> {
    if (userIds.length === 0) return { total: 0, entries: [] };
    const found = await this.redis.definedEntries(...keysOf(shape.boardId, season), desc(shape), ...userIds);
    if (!found) return NOT_LOADED;
    const entries: RankedDefinedEntry[] = [];
    for (let i = 1; i < found.length; i += 4) {
      const userId = String(found[i]);
      const value = String(found[i + 3]);
      const tieKey = value.split("|", 2)[1] ?? "";
      entries.push(entryOf(shape, `${tieKey}|${userId}`, Number(found[i + 2]), value, Number(found[i + 1]) + 1));
    }
    return { total: Number(found[0]), entries: entries.sort((a, b) => a.rank - b.rank) };
  }

  /** What Redis holds for these users in a season (reconciliation): version, member and the member's score. */
  async storedOf(boardId: string, season: string, userIds: string[]): Promise<(StoredEntry | undefined)[]> {
    if (userIds.length === 0) return [];
    const values = await this.redis.hmget(usersKey(boardId, season), ...userIds);
    const members = values.map((v, i) => (v ? `${v.split("|", 2)[1]}|${userIds[i]}` : undefined));
    const scores = await this.redis.zmscore(entriesKey(boardId, season), ...members.map((m) => m ?? "\u0000absent"));
    return members.map((member, i) =>
      member === undefined ? undefined : { version: Number(values[i]!.split("|", 1)[0]), member, score: scores[i] == null ? null : Number(scores[i]) },
    );
  }

  /** Every member of a season with its score, in batches; a member may come twice (ZSCAN). */
  async *members(boardId: string, season: string): AsyncGenerator<{ member: string; userId: string; score: number }[]> {
    let cursor = "0";
    do {
      const [next, flat] = await this.redis.zscan(entriesKey(boardId, season), cursor, "COUNT", 1000);
      cursor = next;
      const batch = [];
      for (let i = 0; i < flat.length; i += 2) batch.push({ member: flat[i]!, userId: flat[i]!.slice(flat[i]!.indexOf("|") + 1), score: Number(flat[i + 1]) });
      if (batch.length > 0) yield batch;
    } while (cursor !== "0");
  }

  /** Removes members PostgreSQL does not have (see REMOVE_SCRIPT); returns those that were there. */
  async remove(boardId: string, season: string, orphans: { member: string; userId: string }[]): Promise<string[]> {
    if (orphans.length === 0) return [];
    const args = orphans.flatMap((o) => [o.member, o.userId]);
    return this.redis.removeDefinedEntries(usersKey(boardId, season), entriesKey(boardId, season), ...args);
  }
}

const desc = (shape: BoardShape) => (shape.order === "desc" ? "1" : "0");

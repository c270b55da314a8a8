import type { Redis } from "ioredis";
import { parsePeriodBoard } from "@scoreboard/platform/periods";
import { USERS, boardKey, periodUsersKey, type RankedEntry } from "./boards.js";

/** Many users' entries on one board in one read; undefined for a user without one. */
export interface ManyRanks {
  ranksOf(board: string, userIds: string[]): Promise<(RankedEntry | undefined)[]>;
}

// boards.ts's RANK_SCRIPT for many users at once: one script call instead of
// one per user (GetStandings asks for hundreds, ten times a second; Redis
// spends most of a small script call on the call itself). Per user: the rank
// (-1 without an entry), the score and the username ("" for the user id).
const RANKS_SCRIPT = `
local out = {}
for i, userId in ipairs(ARGV) do
  local rank, score, name = -1, '0', ''
  local own = redis.call('HGET', KEYS[1], userId)
  if own then
    local first = string.find(own, '|', 1, true)
    local second = string.find(own, '|', first + 1, true)
    local tie = second and string.sub(own, first + 1, second - 1) or string.sub(own, first + 1)
    local member = tie .. '|' .. userId
    local found = redis.call('ZREVRANK', KEYS[2], member)
    if found then
      rank = found
      score = redis.call('ZSCORE', KEYS[2], member)
      local profile = own
      if KEYS[3] ~= KEYS[1] then profile = redis.call('HGET', KEYS[3], userId) end
      if profile then
        local a = string.find(profile, '|', 1, true)
        local b = a and string.find(profile, '|', a + 1, true)
        if b then name = string.sub(profile, b + 1) end
      end
    end
  end
  out[#out + 1] = rank
  out[#out + 1] = score
  out[#out + 1] = name
end
return out
`;

type RedisWithRanks = Redis & { ranksOfUsers(...args: string[]): Promise<(number | string)[]> };

/** ManyRanks on the seed boards in Redis (keys as boards.ts lays them out). */
export class RedisRanks implements ManyRanks {
  private readonly redis: RedisWithRanks;

  constructor(redis: Redis) {
    redis.defineCommand("ranksOfUsers", { lua: RANKS_SCRIPT, numberOfKeys: 3 });
    this.redis = redis as RedisWithRanks;
  }

  async ranksOf(board: string, userIds: string[]): Promise<(RankedEntry | undefined)[]> {
    if (userIds.length === 0) return [];
    const hash = parsePeriodBoard(board) ? periodUsersKey(board) : USERS;
    const flat = await this.redis.ranksOfUsers(hash, boardKey(board), USERS, ...userIds);
    return userIds.map((userId, i) => {
      const rank = Number(flat[i * 3]);
      if (rank < 0) return undefined;
      return { rank: rank + 1, userId, username: String(flat[i * 3 + 2]) || userId, score: Number(flat[i * 3 + 1]) };
    });
  }
}

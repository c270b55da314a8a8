// The first half of every apply script (the seed boards' in boards.ts, the
// defined boards' in defined-boards/redis-store.ts): which of the states
// given win. ARGV = mode, expire-at (unix seconds, 0 for none), then
// `stride` values per user beginning with user id and version (mode '2'
// adds a sixth, a stored version PostgreSQL never made, '-1' for none);
// KEYS[1] is the hash holding "<version>|..." per user. A state wins when it
// is newer than the stored one; mode '1' forces; mode '2' (repair) lets an
// equal version, or the one to replace, win too. Within one call the newest
// state of a user wins. Leaves `mode`, `expireAt`, `best` (per winning user:
// version, ARGV base index `at`, the stored value `old`) and `order` (the
// winners in order); returns at once when nobody wins.
export const NEWER_STATES_LUA = `
local mode = ARGV[1]
local expireAt = tonumber(ARGV[2])
local stride = mode == '2' and 6 or 5
local n = (#ARGV - 2) / stride
local users = {}
for i = 1, n do users[i] = ARGV[(i - 1) * stride + 3] end
local stored = redis.call('HMGET', KEYS[1], unpack(users))
local best, order = {}, {}
for i = 1, n do
  local b = (i - 1) * stride + 2
  local user = users[i]
  local version = tonumber(ARGV[b + 2])
  local wins
  if best[user] then
    wins = version > best[user].version
  elseif mode == '1' or not stored[i] then
    wins = true
  else
    local have = tonumber(string.match(stored[i], '^(%d+)|')) or 0
    wins = version > have or (mode == '2' and (version == have or have == tonumber(ARGV[b + 6])))
  end
  if wins then
    if not best[user] then order[#order + 1] = user end
    best[user] = { version = version, at = b, old = stored[i] }
  end
end
if #order == 0 then return mode == '2' and order or 0 end
local fields, adds, removes = {}, {}, {}
`;

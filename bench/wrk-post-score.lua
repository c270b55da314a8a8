-- wrk script for bench:write: POST /api/score/{user_id} {"increment":1}, each
-- request as a user picked at random from a users file (a Lua file returning
-- { {path, authorization}, ... }, written by bench/wrk.ts).
--
--   wrk -t T -c C ... -s bench/wrk-post-score.lua URL -- USERS_FILE THREADS [RATE_PER_S]
--
-- Without RATE_PER_S: closed loop, each connection sends as soon as its last
-- answer came; latency is wrk's own (send to answer).
-- With RATE_PER_S: each thread (run one connection per thread: -t C -c C) owns
-- a fixed schedule, request n due at start + n * C / RATE_PER_S, and latency is
-- measured from when the request was due, not from when it went out (wrk2's
-- correction): a stall shows up as latency of the requests it held back
-- instead of as requests never sent. A thread still waits for an answer
-- before sending again, so at most C requests are outstanding: paced closed
-- loop, not a true open loop.
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } sb_timespec;
  int clock_gettime(int clock, sb_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("sb_timespec")
local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1e6 + tonumber(timespec.tv_nsec) / 1e3
end

-- Latency histogram: bucket b holds latencies in [GROWTH^b, GROWTH^(b+1)) µs,
-- ~1% wide, so percentiles merged across threads are within 1%.
local GROWTH = 1.01
local LOG_GROWTH = math.log(GROWTH)

-- Main state: hand each thread its number; read every thread's tallies in done().
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- Thread state.
local users, body, thread_count, interval_us, started_us, n, due_us
statuses = {}
hist = {}

function init(args)
  users = dofile(args[1])
  thread_count = tonumber(args[2])
  local rate = tonumber(args[3] or "0")
  -- wrk gives every thread the same seed otherwise.
  math.randomseed(os.time() * 1000 + id)
  body = '{"increment":1}'
  if rate > 0 then
    interval_us = 1e6 * thread_count / rate
  end
  n = 0
end

function delay()
  if not interval_us then return 0 end
  if not started_us then
    -- Threads start a slice of the interval apart, so requests come evenly.
    started_us = now_us() + interval_us * id / thread_count
  end
  due_us = started_us + n * interval_us
  n = n + 1
  local wait_ms = (due_us - now_us()) / 1e3
  return wait_ms > 0 and math.floor(wait_ms) or 0
end

function request()
  local user = users[math.random(#users)]
  return wrk.format("POST", user[1], { ["Authorization"] = user[2], ["Content-Type"] = "application/json" }, body)
end

function response(status)
  statuses[status] = (statuses[status] or 0) + 1
  if due_us then
    local latency = math.max(1, now_us() - due_us)
    local b = math.floor(math.log(latency) / LOG_GROWTH)
    hist[b] = (hist[b] or 0) + 1
  end
end

local function percentile_us(merged, total, p)
  local keys = {}
  for b in pairs(merged) do table.insert(keys, b) end
  table.sort(keys)
  local seen = 0
  for _, b in ipairs(keys) do
    seen = seen + merged[b]
    if seen >= p * total then return GROWTH ^ (b + 1) end
  end
  return 0 / 0
end

-- One line for bench/wrk.ts to parse: key=value pairs, times in µs.
function done(summary, latency)
  local merged_status, merged_hist, paced = {}, {}, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged_status[status] = (merged_status[status] or 0) + count
    end
    for b, count in pairs(thread:get("hist")) do
      merged_hist[b] = (merged_hist[b] or 0) + count
      paced = paced + count
    end
  end
  local out = {
    "duration_us=" .. summary.duration,
    "requests=" .. summary.requests,
    "connect_errors=" .. summary.errors.connect,
    "read_errors=" .. summary.errors.read,
    "write_errors=" .. summary.errors.write,
    "timeouts=" .. summary.errors.timeout,
  }
  if paced > 0 then
    table.insert(out, "p50_us=" .. percentile_us(merged_hist, paced, 0.5))
    table.insert(out, "p99_us=" .. percentile_us(merged_hist, paced, 0.99))
  else
    table.insert(out, "p50_us=" .. latency:percentile(50))
    table.insert(out, "p99_us=" .. latency:percentile(99))
  end
  for status, count in pairs(merged_status) do
    table.insert(out, "status_" .. status .. "=" .. count)
  end
  io.write("SB_WRK " .. table.concat(out, " ") .. "\n")
end

-- wrk script for `make bench`: cycles through request paths, optionally paces the load to a fixed
-- total rate, and writes the summary (latency percentiles in microseconds) as JSON.
--
-- Environment: BENCH_PATHS (file, one path per line), BENCH_TOKEN, BENCH_METHOD, BENCH_BODY,
-- BENCH_RATE (total requests/s over all threads; 0 = as fast as the server answers),
-- BENCH_ARRIVALS ("even", the default: one request every 1/rate s; "random": independent
-- arrivals at the same mean rate, a Poisson process, as from many unrelated clients),
-- BENCH_THREADS (the -t given to wrk), BENCH_OUT (where the JSON goes).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")

-- The wall clock, which wrk's own timers run on (whole milliseconds of gettimeofday): a request
-- delayed by a whole number of milliseconds to a slot on a whole millisecond goes out on it.
local function now_ms()
  ffi.C.clock_gettime(0, clock) -- CLOCK_REALTIME
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local thread_count = 0
local threads = {}

function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local paths = {}
local position = 1
local interval = 0
local next_slot = 0
local phase = 0
local random_arrivals = false
local method = os.getenv("BENCH_METHOD") or "GET"
local body = os.getenv("BENCH_BODY")
local headers = {}

function init(args)
  local token = os.getenv("BENCH_TOKEN")
  if token and token ~= "" then
    headers["Authorization"] = "Token " .. token
  end
  if body and body ~= "" then
    headers["Content-Type"] = "application/json"
  else
    body = nil
  end
  for line in io.lines(os.getenv("BENCH_PATHS")) do
    if line ~= "" then
      table.insert(paths, line)
    end
  end
  local count = tonumber(os.getenv("BENCH_THREADS") or "1")
  -- Each thread walks its own share of the paths, so distinct paths stay distinct.
  local share = math.floor(#paths / count)
  if share >= 1 then
    position = 1 + thread_index * share
  end
  local rate = tonumber(os.getenv("BENCH_RATE") or "0")
  if rate > 0 then
    interval = 1000 * count / rate
    -- The threads take turns: thread i's slots lie i/count of an interval after thread 0's, on
    -- one grid of the shared clock, so the total rate arrives evenly spread instead of as
    -- `count` requests at the same instant.
    phase = interval * thread_index / count
    random_arrivals = os.getenv("BENCH_ARRIVALS") == "random"
    math.randomseed(os.time() * 16 + thread_index)
  end
end

function request()
  local path = paths[position]
  position = position + 1
  if position > #paths then
    position = 1
  end
  return wrk.format(method, path, headers, body)
end

-- Paced mode: every request of this thread takes the next free slot on its fixed schedule.
function delay()
  if interval == 0 then
    return 0
  end
  local now = now_ms()
  if next_slot < now then
    -- Behind schedule (or the first request): now, or the next free slot on this thread's grid.
    if random_arrivals then
      next_slot = now
    else
      next_slot = phase + math.ceil((now - phase) / interval) * interval
    end
  end
  -- wrk truncates the delay to whole milliseconds; rounding up keeps a request from leaving
  -- up to 2 ms before its slot (which, at 500 requests/s, would bring pairs back).
  local wait = math.ceil(next_slot - now)
  if random_arrivals then
    -- Exponential gaps: each thread is a Poisson process at rate/count, and so is their sum.
    next_slot = next_slot - interval * math.log(1 - math.random())
  else
    next_slot = next_slot + interval
  end
  return wait
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("BENCH_OUT"), "w")
  local e = summary.errors
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "stdev": %.1f, "max": %d, ' ..
    '"p50": %d, "p90": %d, "p95": %d, "p99": %d, "p999": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9)))
  out:close()
end

-- POSTs one GraphQL (or baseline) request per call, rotating through bearer tokens so that
-- each thread uses its own slice (cold scenarios: a new person per request; BENCH_OFFSET skips the
-- tokens earlier rounds used), and prints
-- a JSON summary with p50/p95/p99 at the end.
--   BENCH_TOKENS=file BENCH_BODY='{"query": …}' wrk -t2 -c8 -d5s -s list.lua URL
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local body = os.getenv("BENCH_BODY")
local threads = {}
local thread_count = tonumber(os.getenv("BENCH_THREADS") or "1")
local offset = tonumber(os.getenv("BENCH_OFFSET") or "0")
local counter = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

function request()
  local slot = (offset + id + counter * thread_count) % #tokens + 1
  counter = counter + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                  ["Authorization"] = "Bearer " .. tokens[slot]}, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "socket_errors": %d, "status_errors": %d, ' ..
    '"p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean))
end

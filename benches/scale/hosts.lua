-- Each request asks for one Host among N names "h<i>.scale.local" (args: N, the distribution, and
-- for "sweep" a start index). Distributions: "one" (always h1), "uniform", "zipf" (rank i drawn
-- with weight 1/i, s = 1), and "sweep" (the warm-up: every host in turn from the start index, the
-- threads interleaved, so each pass asks for every host once, on whichever connection is free).
--
-- The client's cost per request must not favour a run: on a 2-core machine wrk shares the cores
-- with the proxy. Every request draws one random number, runs the binary search of the Zipf table,
-- and builds the name of a uniformly drawn host; "one" then sends h1's, "zipf" builds and sends
-- the Zipf rank's. The path numbers the thread's requests, so every request line is a new string.
-- What costs LuaJIT is interning strings it has not seen (allocation, its string table, garbage
-- collection): when "one" built only repeated names, it cost the client about 1.5 us less per
-- request than uniform at 1M hosts, and Zipf's mostly repeated names were cheaper too. Now "one"
-- and "uniform" build the same strings, and "zipf" one more (mostly found interned already).
local count, distribution, start = 1, "one", 0
local cdf = {}
local next_seed = 1
local thread_number, threads = 0, 1
local sent, drawn = 0, nil

function setup(thread)
   thread:set("seed", next_seed)
   next_seed = next_seed + 1
end

function init(args)
   count = tonumber(args[1])
   distribution = args[2]
   start = tonumber(args[3] or "0") % count
   thread_number = (seed or 1) - 1
   threads = tonumber(os.getenv("WRK_THREADS") or "1")
   local sum = 0
   for i = 1, count do
      sum = sum + 1 / i
      cdf[i] = sum
   end
   for i = 1, count do
      cdf[i] = cdf[i] / sum
   end
   math.randomseed(seed or 1)
end

-- The rank drawn by u under Zipf(s = 1): the first i whose cumulative weight reaches u.
local function zipf_rank(u)
   local low, high = 1, count
   while low < high do
      local mid = math.floor((low + high) / 2)
      if cdf[mid] < u then low = mid + 1 else high = mid end
   end
   return low
end

function request()
   local u = math.random()
   local rank = zipf_rank(u)
   local i = math.floor(u * count) + 1
   if distribution == "sweep" then
      i = (start + sent * threads + thread_number) % count + 1
   end
   sent = sent + 1
   -- Kept in an upvalue, so that the JIT builds it in every distribution.
   drawn = "h" .. i .. ".scale.local"
   local host = drawn
   if distribution == "one" then
      host = "h1.scale.local"
   elseif distribution == "zipf" then
      host = "h" .. rank .. ".scale.local"
   end
   return wrk.format("GET", "/" .. sent, { Host = host })
end

-- One machine-readable line, as benches/load/report.lua prints it.
function done(summary, latency, requests)
   io.write(string.format("RESULT %d %d %d %d\n", summary.requests, summary.duration,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      summary.errors.status))
end

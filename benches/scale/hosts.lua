-- Each request asks for one Host among N names "h<i>.scale.local" (args: N, then the
-- distribution: "one" (always h1), "uniform", or "zipf" (rank i drawn with weight 1/i, s = 1)).
-- Every distribution draws one random number, runs the same binary search over a 1/i table and
-- formats one request, so wrk's own cost per request is the same in the three runs (on a 2-core
-- machine wrk shares the cores with the proxy: a cheaper client would favour one run).
local count, distribution = 1, "one"
local cdf = {}
local next_seed = 1

function setup(thread)
   thread:set("seed", next_seed)
   next_seed = next_seed + 1
end

function init(args)
   count = tonumber(args[1])
   distribution = args[2]
   do
      local sum = 0
      for i = 1, count do
         sum = sum + 1 / i
         cdf[i] = sum
      end
      for i = 1, count do
         cdf[i] = cdf[i] / sum
      end
   end
   math.randomseed(seed or 1)
end

local function pick(u)
   local low, high = 1, count
   while low < high do
      local mid = math.floor((low + high) / 2)
      if cdf[mid] < u then low = mid + 1 else high = mid end
   end
   if distribution == "one" then
      return 1
   elseif distribution == "uniform" then
      return math.floor(u * count) + 1
   end
   return low
end

function request()
   local i = pick(math.random())
   return wrk.format("GET", "/", { Host = "h" .. i .. ".scale.local" })
end

-- One machine-readable line, as benches/load/report.lua prints it.
function done(summary, latency, requests)
   io.write(string.format("RESULT %d %d %d %d\n", summary.requests, summary.duration,
      summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
      summary.errors.status))
end

-- Each request asks for a random Host among N names (args: N and a pattern where %d is the
-- number, e.g. "h%d.scale.local"; a pattern without %d gives one name). Requests are formatted
-- once in init so wrk's own cost per request stays the same for 1 or 100,000 names.
local requests = {}
local count = 0
local next_seed = 1

function setup(thread)
   thread:set("seed", next_seed)
   next_seed = next_seed + 1
end

function init(args)
   count = tonumber(args[1])
   for i = 1, count do
      requests[i] = wrk.format("GET", "/", { Host = string.format(args[2], i) })
   end
   math.randomseed(seed or 1)
end

function request()
   return requests[math.random(count)]
end

-- The lookup as one Lua script, as hipache ran it before the pipeline: kept for
-- redis_cost.sh, which compares what each form costs Redis.
-- A host's lookup in one command. Every key comes as KEYS, prefix included:
-- KEYS[1..n] the frontend list of each candidate of the host, in order; KEYS[n+1] dead:<host>;
-- KEYS[n+2] state:<host>. ARGV[1] is "1" to also return the shortest remaining TTL (ms) of the
-- keys the answer was read from, or -1 when none expires.
-- Returns {0} when no candidate has a list, else {i, list of candidate i, dead members, state
-- hash as field/value pairs, ttl}.
local candidates = #KEYS - 2
local matched, list = 0, nil
-- Arguments are strings: a Lua number passed to redis.call is formatted with sprintf, which cost
-- Redis more than the LRANGE itself.
for i = 1, candidates do
  list = redis.call('LRANGE', KEYS[i], '0', '-1')
  if #list > 0 then
    matched = i
    break
  end
end
if matched == 0 then
  return {0}
end
local dead = redis.call('SMEMBERS', KEYS[candidates + 1])
local state = redis.call('HGETALL', KEYS[candidates + 2])
local ttl = -1
local function shortest(key)
  local left = redis.call('PTTL', key)
  if left > 0 and (ttl < 0 or left < ttl) then
    ttl = left
  end
end
if ARGV[1] == '1' then
  shortest(KEYS[matched])
  shortest(KEYS[candidates + 1])
  shortest(KEYS[candidates + 2])
end
return {matched, list, dead, state, ttl}

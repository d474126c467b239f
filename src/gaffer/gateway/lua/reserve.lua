-- Reserve budget for one model call, atomically across every gateway process.
-- KEYS[1] run spent hash {cost, tokens, calls}   KEYS[2] run held zset
-- KEYS[3] project month spent hash {cost}         KEYS[4] project month held zset
-- Held members are "<reservation id>:<cost nano-USD>:<tokens>", scored by their expiry (ms).
-- ARGV: 1 member, 2 estimated cost, 3 estimated tokens, 4 max run cost, 5 max run tokens,
--       6 max run calls, 7 project monthly cost (limits: 0 = none), 8 now ms, 9 expiry ms,
--       10 key ttl s.
-- Returns {"seed"} when a spent hash is missing (the caller seeds it from the database),
-- {"ok"}, or {<budget>, spent, held by other calls, limit, this call's estimate} with budget run_cost|run_tokens|run_calls|
-- project_cost.
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('EXISTS', KEYS[3]) == 0 then
  return {'seed'}
end
local now = tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)

local function held(key)
  local cost, tokens = 0, 0
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    local _, _, c, t = string.find(member, '^[^:]*:(%d+):(%d+)$')
    cost = cost + tonumber(c)
    tokens = tokens + tonumber(t)
  end
  return cost, tokens
end

local est_cost, est_tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
local max_cost, max_tokens = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_calls, monthly = tonumber(ARGV[6]), tonumber(ARGV[7])

local run_cost = tonumber(redis.call('HGET', KEYS[1], 'cost') or '0')
local run_tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or '0')
local run_calls = tonumber(redis.call('HGET', KEYS[1], 'calls') or '0')
local run_held_cost, run_held_tokens = held(KEYS[2])

if max_calls > 0 and run_calls + 1 > max_calls then
  return {'run_calls', run_calls, 0, max_calls, 1}
end
if max_cost > 0 and run_cost + run_held_cost + est_cost > max_cost then
  return {'run_cost', run_cost, run_held_cost, max_cost, est_cost}
end
if max_tokens > 0 and run_tokens + run_held_tokens + est_tokens > max_tokens then
  return {'run_tokens', run_tokens, run_held_tokens, max_tokens, est_tokens}
end
local project_cost = tonumber(redis.call('HGET', KEYS[3], 'cost') or '0')
local project_held = held(KEYS[4])
if monthly > 0 and project_cost + project_held + est_cost > monthly then
  return {'project_cost', project_cost, project_held, monthly, est_cost}
end

redis.call('ZADD', KEYS[2], ARGV[9], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[9], ARGV[1])
redis.call('HINCRBY', KEYS[1], 'calls', 1)
for i = 1, 4 do
  redis.call('EXPIRE', KEYS[i], ARGV[10])
end
return {'ok'}

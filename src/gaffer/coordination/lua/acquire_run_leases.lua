-- Acquire the leases a run needs before it may start, atomically.
-- KEYS[1] work-item lock (string: holder run id, PX lease)
-- KEYS[2] project slots for the agent type (zset: run id -> lease expiry ms)
-- KEYS[3] global slots (zset: run id -> lease expiry ms)
-- ARGV[1] run id, ARGV[2] lease ms, ARGV[3] project cap (0: none), ARGV[4] global cap (0: none)
-- Returns {1, "ok"} or {0, reason, detail}. Idempotent for the run that already holds them.
local run_id = ARGV[1]
local lease = tonumber(ARGV[2])
local project_cap = tonumber(ARGV[3])
local global_cap = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= run_id then
  return {0, 'work_item_busy', holder}
end
if project_cap > 0 and not redis.call('ZSCORE', KEYS[2], run_id)
    and redis.call('ZCARD', KEYS[2]) >= project_cap then
  return {0, 'project_cap', tostring(project_cap)}
end
if global_cap > 0 and not redis.call('ZSCORE', KEYS[3], run_id)
    and redis.call('ZCARD', KEYS[3]) >= global_cap then
  return {0, 'global_cap', tostring(global_cap)}
end
redis.call('SET', KEYS[1], run_id, 'PX', lease)
redis.call('ZADD', KEYS[2], now + lease, run_id)
redis.call('ZADD', KEYS[3], now + lease, run_id)
return {1, 'ok', ''}

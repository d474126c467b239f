-- gate: KEYS[1] window counter, KEYS[2] hold marker, KEYS[3] the project's buffer list;
-- ARGV[1] triggers now, ARGV[2] threshold, ARGV[3] window (ms), ARGV[4] hold (ms).
-- Fixed window: INCRBY, and PEXPIRE when the window opens. Over the threshold the hold
-- marker is set for the hold time (refreshed on every further overage). Returns
-- {1, reason} to buffer ('tripped', 'overage', 'held', 'backlog') or {0, 'under_threshold'}.
local n, threshold = tonumber(ARGV[1]), tonumber(ARGV[2])
local count = redis.call('INCRBY', KEYS[1], n)
if count == n or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
if count > threshold then
  local held = redis.call('EXISTS', KEYS[2])
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
  if held == 1 then return {1, 'overage'} end
  return {1, 'tripped'}
end
if redis.call('EXISTS', KEYS[2]) == 1 then return {1, 'held'} end
if redis.call('LLEN', KEYS[3]) > 0 then return {1, 'backlog'} end
return {0, 'under_threshold'}

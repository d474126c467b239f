-- Extend a running run's leases. Same KEYS as acquire; ARGV[1] run id, ARGV[2] lease ms.
-- Returns {1, ""}, or {0, holder} when the work-item lock is now held by another run (our
-- lease had lapsed and that run took the work item).
-- The slots are put back even when they had lapsed and the caps are now full: caps govern
-- which runs may start, and the slot sets must count every run that is running, or the next
-- acquire would let one run too many start.
local run_id = ARGV[1]
local lease = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder = redis.call('GET', KEYS[1])
local kept = 1
if (not holder) or holder == run_id then
  redis.call('SET', KEYS[1], run_id, 'PX', lease)
  holder = ''
else
  kept = 0
end
redis.call('ZADD', KEYS[2], now + lease, run_id)
redis.call('ZADD', KEYS[3], now + lease, run_id)
return {kept, holder}

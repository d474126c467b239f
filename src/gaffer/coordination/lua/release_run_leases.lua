-- Release a run's leases. Same KEYS as acquire; ARGV[1] run id. The lock is deleted only if
-- this run holds it. Returns the number of slots removed.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
end
return redis.call('ZREM', KEYS[2], ARGV[1]) + redis.call('ZREM', KEYS[3], ARGV[1])

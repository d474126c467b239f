-- SET KEYS[1] ARGV[1] NX EX ARGV[2], also succeeding when ARGV[1] already holds it (a replay
-- of the same run must not lose to itself). Returns 1 claimed, 2 already ours, 0 held by other.
local holder = redis.call('GET', KEYS[1])
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
  return 1
end
if holder == ARGV[1] then
  return 2
end
return 0

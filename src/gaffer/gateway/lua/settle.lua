-- Settle a reservation with the call's real figures.
-- KEYS as reserve.lua. ARGV: 1 member, 2 real cost nano-USD, 3 real tokens.
-- A spent hash that expired meanwhile is left missing (the next reserve seeds it from the
-- database, which holds this call's row), never recreated with one call's figures.
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'cost', ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'tokens', ARGV[3])
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('HINCRBY', KEYS[3], 'cost', ARGV[2])
end
return 1

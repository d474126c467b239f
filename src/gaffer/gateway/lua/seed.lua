-- Seed missing spent figures from the database (HSETNX: figures already there win).
-- KEYS[1] run spent hash, KEYS[2] project month spent hash.
-- ARGV: 1 run cost, 2 run tokens, 3 run calls, 4 project month cost, 5 key ttl s.
redis.call('HSETNX', KEYS[1], 'cost', ARGV[1])
redis.call('HSETNX', KEYS[1], 'tokens', ARGV[2])
redis.call('HSETNX', KEYS[1], 'calls', ARGV[3])
redis.call('HSETNX', KEYS[2], 'cost', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1

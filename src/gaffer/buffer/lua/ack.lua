-- ack: ARGV[2] grace (ms), ARGV[3..] run segments whose runs now exist.
-- Each entry is marked done and expires after the grace (its idempotency key with it), so a
-- read or cancel arriving meanwhile learns the run was materialised. Returns how many existed.
local grace = tonumber(ARGV[2])
local acked = 0
for i = 3, #ARGV do
  local seg = ARGV[i]
  local ek = entry_key(seg)
  redis.call('ZREM', P .. ':inflight', seg)
  local idem = redis.call('HGET', ek, 'idem')
  if idem then
    acked = acked + 1
    redis.call('HSET', ek, 'status', 'done', 'lease', '')
    if grace > 0 then redis.call('PEXPIRE', ek, grace) else redis.call('DEL', ek) end
    if idem ~= '' and redis.call('GET', idem) == seg then
      if grace > 0 then redis.call('PEXPIRE', idem, grace) else redis.call('DEL', idem) end
    end
  end
end
return acked

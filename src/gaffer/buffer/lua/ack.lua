-- ack: ARGV[2] lease token, ARGV[3] grace (ms), ARGV[4..] run segments whose runs now exist.
-- Returns one outcome per segment:
--   'acked'      the entry was in flight under the lease: it is marked done and expires after
--                the grace (its idempotency key with it), so a read or cancel arriving
--                meanwhile learns the run was materialised;
--   'cancelled'  the lease expired, the reclaim sweep put the entry back and a cancel marked it
--                meanwhile: it is taken back in flight under the lease (out of its list), so
--                the caller cancels the run it just created and acks it again;
--   'lost'       the entry is missing, or no longer ours and not cancelled while queued (put
--                back, or taken by another drainer): it is left alone (its replay is
--                idempotent: the row exists).
local lease, grace = ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do
  local seg = ARGV[i]
  local ek = entry_key(seg)
  local f = redis.call('HMGET', ek, 'status', 'lease', 'cancelled', 'idem', 'org', 'project')
  if f[1] == 'in_flight' and f[2] == lease then
    redis.call('ZREM', P .. ':inflight', seg)
    redis.call('HSET', ek, 'status', 'done', 'lease', '')
    if grace > 0 then redis.call('PEXPIRE', ek, grace) else redis.call('DEL', ek) end
    local idem = f[4]
    if idem and idem ~= '' and redis.call('GET', idem) == seg then
      if grace > 0 then redis.call('PEXPIRE', idem, grace) else redis.call('DEL', idem) end
    end
    out[#out + 1] = 'acked'
  elseif f[1] == 'queued' and f[3] == '1' then
    local now = now_ms()
    redis.call('LREM', queue_key(f[6]), 0, seg)
    unmark_if_empty(f[5], f[6])
    redis.call('HSET', ek, 'status', 'in_flight', 'popped_ms', now, 'lease', lease)
    redis.call('ZADD', P .. ':inflight', now, seg)
    out[#out + 1] = 'cancelled'
  else
    out[#out + 1] = 'lost'
  end
end
return out

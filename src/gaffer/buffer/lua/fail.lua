-- fail: ARGV[2] lease token, ARGV[3] mode, ARGV[4] error text, ARGV[5..] run segments.
-- mode 'delete': the entry's terminal run row is written; delete the entry (and its
-- idempotency key). mode 'dead': no row could be written at all; keep the entry (no expiry)
-- with status 'dead' and append it to the dead-letter list P:dead for an operator.
-- Only entries in flight under the lease are touched. Returns how many were.
local lease, mode, err = ARGV[2], ARGV[3], ARGV[4]
local done = 0
for i = 5, #ARGV do
  local seg = ARGV[i]
  local ek = entry_key(seg)
  local fields = redis.call('HMGET', ek, 'status', 'lease', 'idem')
  if fields[1] == 'in_flight' and fields[2] == lease then
    done = done + 1
    redis.call('ZREM', P .. ':inflight', seg)
    if mode == 'dead' then
      redis.call('HSET', ek, 'status', 'dead', 'lease', '', 'error', err)
      redis.call('PERSIST', ek)
      redis.call('RPUSH', P .. ':dead', seg)
    else
      redis.call('DEL', ek)
      if fields[3] ~= '' and redis.call('GET', fields[3]) == seg then
        redis.call('DEL', fields[3])
      end
    end
  end
end
return done

-- reclaim: ARGV[2] lease (ms), ARGV[3] most entries per call.
-- Entries popped more than a lease ago and never acknowledged (their drainer died or hung)
-- go back to the front of their lists in accept order, attempts + 1. Returns how many.
local lease_ms, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local segs = redis.call('ZRANGEBYSCORE', P .. ':inflight', '-inf', now_ms() - lease_ms,
  'LIMIT', 0, limit)
local dated = {}
for _, seg in ipairs(segs) do
  dated[#dated + 1] = {seg, tonumber(redis.call('HGET', entry_key(seg), 'seq')) or 0}
end
-- In accept order, so put_back (which pushes the last one first) leaves the oldest in front.
table.sort(dated, function(a, b)
  if a[2] == b[2] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local ordered = {}
for i, d in ipairs(dated) do ordered[i] = d[1] end
local reclaimed = 0
for _, a in ipairs(put_back(ordered, '', 'lease expired: the drainer did not acknowledge it')) do
  if a >= 0 then reclaimed = reclaimed + 1 end
end
return reclaimed

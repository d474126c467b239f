-- pop: ARGV[2] org segment, ARGV[3] budget, ARGV[4] lease token.
-- Picks the org's next project (a cursor shared by every drainer rotates over its projects in
-- sorted order), takes up to `budget` queued entries from the front of its list and marks them
-- in flight under the lease. List members whose entry is gone or no longer queued are
-- skipped (dropped). Returns {project, skipped, {entry fields...}, ...}.
local org, budget, lease = ARGV[2], tonumber(ARGV[3]), ARGV[4]
local projects = redis.call('SMEMBERS', org_key(org))
if #projects == 0 then
  redis.call('SREM', P .. ':orgs', org)
  redis.call('DEL', P .. ':pc:' .. org)
  return {false, 0}
end
table.sort(projects)
local turn = redis.call('INCR', P .. ':pc:' .. org)
local project = projects[(turn % #projects) + 1]
local q = queue_key(project)
local now = now_ms()
local out = {project, 0}
local taken = 0
while taken < budget do
  local seg = redis.call('LPOP', q)
  if not seg then break end
  local ek = entry_key(seg)
  if redis.call('HGET', ek, 'status') == 'queued' then
    redis.call('HSET', ek, 'status', 'in_flight', 'popped_ms', now, 'lease', lease)
    redis.call('ZADD', P .. ':inflight', now, seg)
    taken = taken + 1
    out[#out + 1] = redis.call('HGETALL', ek)
  else
    out[2] = out[2] + 1
  end
end
unmark_if_empty(org, project)
return out

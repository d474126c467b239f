-- stale: ARGV[2] age threshold (ms), ARGV[3] most organizations this pass.
-- One pass of the stale sweep. A cycle starts by snapshotting the organization set into
-- P:stale:orgs; a durable cursor (P:stale:state pos) walks it, at most ARGV[3] orgs per pass.
-- For each project of a visited org, the entries older than the threshold are counted (lists
-- are in accept order, so the stale ones are a prefix: binary search) into the hash
-- P:stale:counts (project segment -> count). When the cursor reaches the end, the cycle
-- completes: projects not visited in it (drained away) leave the hash.
-- Returns {cycle, position, snapshot size, orgs visited, completed (0/1)}.
local threshold, per_pass = tonumber(ARGV[2]), tonumber(ARGV[3])
local snap, state = P .. ':stale:orgs', P .. ':stale:state'
local counts, seen = P .. ':stale:counts', P .. ':stale:seen'
if redis.call('EXISTS', snap) == 0 then
  local orgs = redis.call('SMEMBERS', P .. ':orgs')
  table.sort(orgs)
  redis.call('HINCRBY', state, 'cycle', 1)
  redis.call('HSET', state, 'pos', 0)
  redis.call('DEL', seen)
  for _, org in ipairs(orgs) do redis.call('RPUSH', snap, org) end
end
local cycle = tonumber(redis.call('HGET', state, 'cycle'))
local pos = tonumber(redis.call('HGET', state, 'pos')) or 0
local cutoff = now_ms() - threshold

local function created(q, i)
  local seg = redis.call('LINDEX', q, i)
  return tonumber(redis.call('HGET', entry_key(seg), 'created_ms')) or 0
end

local orgs = redis.call('LRANGE', snap, pos, pos + per_pass - 1)
for _, org in ipairs(orgs) do
  for _, project in ipairs(redis.call('SMEMBERS', org_key(org))) do
    local q = queue_key(project)
    local lo, hi = 0, redis.call('LLEN', q)
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if created(q, mid) <= cutoff then lo = mid + 1 else hi = mid end
    end
    redis.call('HSET', counts, project, lo)
    redis.call('SADD', seen, project)
  end
end
pos = pos + #orgs
local total = redis.call('LLEN', snap)
local completed = 0
if pos >= total then
  for _, project in ipairs(redis.call('HKEYS', counts)) do
    if redis.call('SISMEMBER', seen, project) == 0 then redis.call('HDEL', counts, project) end
  end
  redis.call('DEL', snap, seen)
  redis.call('HSET', state, 'pos', 0)
  completed = 1
else
  redis.call('HSET', state, 'pos', pos)
end
return {cycle, pos, total, #orgs, completed}

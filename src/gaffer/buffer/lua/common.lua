-- Shared by every buffer script (prepended by gaffer/buffer/scripts.py).
-- Key layout under the prefix P (ARGV[1] of every script, "gaffer:buffer"); segments are
-- already encoded by gaffer.coordination.keys.encode_part, so ':' cannot make keys collide:
--   P:e:<run>        entry hash          P:q:<project>    FIFO list of run segments
--   P:orgs           set of org segments P:o:<org>        set of project segments of an org
--   P:pc:<org>       project cursor      P:inflight       zset run segment -> pop time (ms)
--   P:dead           dead-letter list    P:seq            accept counter (entry field seq)
local P = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function entry_key(seg) return P .. ':e:' .. seg end
local function queue_key(project) return P .. ':q:' .. project end
local function org_key(org) return P .. ':o:' .. org end

-- Put a project (back) into the organization and project sets.
local function mark_waiting(org, project)
  redis.call('SADD', P .. ':orgs', org)
  redis.call('SADD', org_key(org), project)
end

-- Drop a project from the sets when its list is empty, and the org when it has no project.
local function unmark_if_empty(org, project)
  if redis.call('LLEN', queue_key(project)) == 0 then
    redis.call('SREM', org_key(org), project)
    if redis.call('SCARD', org_key(org)) == 0 then
      redis.call('SREM', P .. ':orgs', org)
      redis.call('DEL', P .. ':pc:' .. org)
    end
  end
end

-- Put in-flight entries (in pop order) back at the front of their lists, attempts + 1.
-- Only entries still in flight under `lease` are touched ('' matches any lease).
local function put_back(segs, lease, err)
  local attempts = {}
  for i = #segs, 1, -1 do
    local seg = segs[i]
    local ek = entry_key(seg)
    local fields = redis.call('HMGET', ek, 'status', 'lease', 'org', 'project')
    redis.call('ZREM', P .. ':inflight', seg)
    if fields[1] == 'in_flight' and (lease == '' or fields[2] == lease) then
      attempts[i] = redis.call('HINCRBY', ek, 'attempts', 1)
      redis.call('HSET', ek, 'status', 'queued', 'lease', '', 'error', err)
      redis.call('LPUSH', queue_key(fields[4]), seg)
      mark_waiting(fields[3], fields[4])
    else
      attempts[i] = -1
    end
  end
  return attempts
end

-- accept: ARGV[2] org segment, ARGV[3] project segment, ARGV[4] JSON array of
-- {id, seg, snapshot, idem, tags, metadata} (idem: full idempotency key name or '').
-- Returns {now_ms, {{outcome, run_id}, ...}} with outcome 'accepted', 'duplicate' (that run
-- id already has an entry: nothing changes) or 'bound' (the idempotency key is bound to a
-- live entry, whose run id is returned instead).
local org, project = ARGV[2], ARGV[3]
local entries = cjson.decode(ARGV[4])
local now = now_ms()
local q = queue_key(project)
local results = {}
local added = 0
-- Accept order, global: the reclaim sweep restores a list's order from it.
local seq = redis.call('INCRBY', P .. ':seq', #entries) - #entries
for i, e in ipairs(entries) do
  local ek = entry_key(e.seg)
  local bound = false
  if redis.call('EXISTS', ek) == 1 then
    results[i] = {'duplicate', e.id}
  else
    if e.idem ~= '' then
      local other = redis.call('GET', e.idem)
      if other then
        local status = redis.call('HGET', entry_key(other), 'status')
        if status and status ~= 'dead' then
          results[i] = {'bound', redis.call('HGET', entry_key(other), 'id')}
          bound = true
        end
      end
    end
    if not bound then
      redis.call('HSET', ek, 'id', e.id, 'seg', e.seg, 'org', org, 'project', project,
        'snapshot', e.snapshot, 'status', 'queued', 'cancelled', '0', 'attempts', '0',
        'created_ms', now, 'tags', e.tags, 'metadata', e.metadata, 'version', '0',
        'idem', e.idem, 'lease', '', 'error', '', 'seq', seq + i)
      if e.idem ~= '' then redis.call('SET', e.idem, e.seg) end
      redis.call('RPUSH', q, e.seg)
      added = added + 1
      results[i] = {'accepted', e.id}
    end
  end
end
if added > 0 then mark_waiting(org, project) end
return {now, results}

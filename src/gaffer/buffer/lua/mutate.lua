-- mutate: ARGV[2] run segment, ARGV[3] op, ARGV[4] argument, ARGV[5] number.
-- Only entries still queued (not in flight, not done) change. Ops:
--   'cancel'            mark cancelled (idempotent)                      -> {'ok'}
--   'tags', JSON list, cap   append the tags not already there, refusing to exceed the cap
--                            -> {'ok', tags JSON} or {'tag_cap', tags JSON}
--   'metadata', JSON object, expected version   replace the metadata if the entry's version
--                            is the expected one, version + 1
--                            -> {'ok', new version} or {'version_conflict', version}
-- Otherwise {'missing'}, {'in_flight'}, {'done'} or {'dead'}.
local seg, op, arg, number = ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local ek = entry_key(seg)
local status = redis.call('HGET', ek, 'status')
if not status then return {'missing'} end
if status ~= 'queued' then return {status} end
if op == 'cancel' then
  redis.call('HSET', ek, 'cancelled', '1')
  return {'ok'}
elseif op == 'tags' then
  local current = redis.call('HGET', ek, 'tags')
  local tags = cjson.decode(current)
  local have = {}
  for _, t in ipairs(tags) do have[t] = true end
  for _, t in ipairs(cjson.decode(arg)) do
    if not have[t] then
      tags[#tags + 1] = t
      have[t] = true
    end
  end
  if #tags > number then return {'tag_cap', current} end
  if #tags == 0 then return {'ok', '[]'} end
  local encoded = cjson.encode(tags)
  redis.call('HSET', ek, 'tags', encoded)
  return {'ok', encoded}
elseif op == 'metadata' then
  local version = tonumber(redis.call('HGET', ek, 'version'))
  if version ~= number then return {'version_conflict', version} end
  redis.call('HSET', ek, 'metadata', arg, 'version', version + 1)
  return {'ok', version + 1}
end
return redis.error_reply('unknown mutate op ' .. op)

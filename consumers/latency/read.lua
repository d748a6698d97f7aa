-- KEYS[1]: a service's latency state. Returns {type, seq, state, node, at};
-- a key that is not a hash returns its type alone.
local t = redis.call('TYPE', KEYS[1]).ok
if t ~= 'hash' then
  return {t}
end
local v = redis.call('HMGET', KEYS[1], 'seq', 'state', 'node', 'at')
return {t, v[1] or '', v[2] or '', v[3] or '', v[4] or ''}

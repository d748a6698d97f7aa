#!lua
-- Restore a node's aggregate from a checkpoint, atomically, into a store
-- that holds no stream mark. KEYS: mark, meta, series, rejected hashes.
-- ARGV: a unique nonce, then for each key in order, a count n and n
-- field/value pairs. Like apply.lua, a guard field written first and
-- deleted last marks a restore that Redis loaded only in part.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local guard = 'open:' .. ARGV[1]
redis.call('HSET', KEYS[1], guard, '0')
local i = 2
for k = 1, 4 do
  local n = tonumber(ARGV[i])
  i = i + 1
  local chunk = {}
  for j = 1, n do
    chunk[#chunk + 1] = ARGV[i]
    chunk[#chunk + 1] = ARGV[i + 1]
    i = i + 2
    if #chunk >= 1000 then
      redis.call('HSET', KEYS[k], unpack(chunk))
      chunk = {}
    end
  end
  if #chunk > 0 then
    redis.call('HSET', KEYS[k], unpack(chunk))
  end
end
redis.call('HDEL', KEYS[1], guard)
return 1

#!lua
-- Restore a node's aggregate from a checkpoint, atomically, into a store
-- that holds no stream mark. KEYS: mark, meta, series, rejected hashes.
-- ARGV: for each key in order, a count n and n field/value pairs.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local i = 1
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
return 1

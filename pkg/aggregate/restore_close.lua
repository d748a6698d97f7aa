#!lua
-- Close a restore (Store.Restore): if the mark hash still holds this
-- restore's guard and no stream mark (nothing reset or wrote the aggregate
-- meanwhile), write the marks and delete the guard. KEYS: the mark hash.
-- ARGV: the guard field, then field/value pairs of the marks.
if redis.call('HGET', KEYS[1], ARGV[1]) ~= '0' or redis.call('HEXISTS', KEYS[1], 'stream') == 1 then
  return 0
end
local chunk = {}
for i = 2, #ARGV, 2 do
  chunk[#chunk + 1] = ARGV[i]
  chunk[#chunk + 1] = ARGV[i + 1]
  if #chunk >= 1000 then
    redis.call('HSET', KEYS[1], unpack(chunk))
    chunk = {}
  end
end
if #chunk > 0 then
  redis.call('HSET', KEYS[1], unpack(chunk))
end
redis.call('HDEL', KEYS[1], ARGV[1])
return 1

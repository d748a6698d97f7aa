#!lua
-- Forget a peer's snapshot unless the stored one is newer than the removal.
-- KEYS[1]: the peer's snapshot hash. ARGV[1]: the removal's version.
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and tonumber(cur) > tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
return 1

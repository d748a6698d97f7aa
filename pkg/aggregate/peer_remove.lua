#!lua
-- Forget a peer's snapshot unless the stored one is newer than the removal,
-- and mark its record removed: the peer left on purpose. The removal's
-- version is compared, never stored: the record keeps the version of the
-- newest snapshot seen, so no removal can make it claim more.
-- KEYS[1]: the peer's snapshot hash; KEYS[2]: the peer's record.
-- ARGV[1]: the removal's version; ARGV[2]: how long the removed record is
-- kept (ms), so the deltas the peer applied stay told apart from those
-- nobody will apply.
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and tonumber(cur) > tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'removed', '1')
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1

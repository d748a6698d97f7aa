#!lua
-- Store a peer's snapshot unless the stored one has a higher version.
-- KEYS[1]: the peer's snapshot hash. ARGV: version, generated (Unix ms),
-- expires (Unix ms), ttl (ms), data.
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and tonumber(cur) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'generated', ARGV[2], 'expires', ARGV[3], 'data', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1

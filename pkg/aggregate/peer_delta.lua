#!lua
-- Store a peer's incremental snapshot onto exactly its base: the stored
-- snapshot's version and generation time must be the delta's base's.
-- KEYS[1]: the peer's snapshot hash; KEYS[2]: the peer's record.
-- ARGV: version, generated (Unix ms), expires (Unix ms), ttl (ms), data,
-- record ttl (ms), base version, base generated (Unix ms), longest chain.
-- Returns 1 stored, 0 stale (the stored one is newer, or is this delta),
-- -1 no base (a full snapshot is needed).
local cur = redis.call('HMGET', KEYS[1], 'version', 'generated', 'deltas')
if not cur[1] then
  return -1
end
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
  return 0
end
if tonumber(cur[1]) > tonumber(ARGV[1]) then
  return 0
end
if cur[1] ~= ARGV[7] or cur[2] ~= ARGV[8] then
  return -1
end
local n = tonumber(cur[3] or '0') + 1
if n > tonumber(ARGV[9]) then
  return -1
end
-- 'v<n>' names delta n as 'full' names the full snapshot.
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'generated', ARGV[2], 'expires', ARGV[3], 'deltas', n, 'd' .. n, ARGV[5],
  'v' .. n, ARGV[1] .. ':' .. ARGV[2] .. ':' .. string.len(ARGV[5]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('HSET', KEYS[2], 'version', ARGV[1], 'generated', ARGV[2], 'expires', ARGV[3], 'removed', '0')
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1

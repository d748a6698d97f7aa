#!lua
-- Store a peer's snapshot unless the stored one has a higher version, and
-- remember the peer beyond the snapshot's expiry.
-- KEYS[1]: the peer's snapshot hash; KEYS[2]: the peer's record (what is
-- remembered of it). ARGV: version, generated (Unix ms), expires (Unix ms),
-- ttl (ms), data, record ttl (ms).
local cur = redis.call('HGET', KEYS[1], 'version')
if cur and tonumber(cur) > tonumber(ARGV[1]) then
  return 0
end
-- A full snapshot replaces the chain of deltas stored on the last one.
-- 'full' names it (version:generated:length), so a reader holding a copy
-- tells whether the stored chain still starts with it (Peers.ListSince).
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'generated', ARGV[2], 'expires', ARGV[3], 'data', ARGV[5],
  'full', ARGV[1] .. ':' .. ARGV[2] .. ':' .. string.len(ARGV[5]))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
-- The record follows the snapshot stored: a live snapshot brings a removed
-- peer back, even one whose versions started over (its stream was reset).
redis.call('HSET', KEYS[2], 'version', ARGV[1], 'generated', ARGV[2], 'expires', ARGV[3], 'removed', '0')
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1

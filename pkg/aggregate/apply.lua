#!lua
-- Apply one group of writes to a node's aggregate, atomically, if and only
-- if the node's stream mark is the one the caller expects.
--
-- KEYS: 1 mark hash, 2 series hash, 3 meta hash, 4 rejected hash (one slot).
-- ARGV: 1 expected stream mark, 2 new stream mark, 3 a unique nonce, then
-- one section per key, in KEYS order: a count n followed by n field/value
-- pairs, each written with HSET.
--
-- Every value is absolute: the aggregator holds the aggregate in memory,
-- computes each new value and checks it (an add that would overflow is
-- rejected there), so the script only compares and writes. Absolute writes
-- also make a replay of any part of the script overwrite, never add twice.
-- The Go side formats every argument, and the shebang makes Redis refuse
-- the whole script up front when it is out of memory, so no write fails
-- half way.
local cur = redis.call('HGET', KEYS[1], 'stream') or '0'
if cur ~= ARGV[1] then
  return {0, cur}
end
-- A guard field, written first and deleted last: if Redis ever loads a
-- prefix of this script's effects (Redis 7.0 can run a torn transaction's
-- fragment on a later AOF load), the guard is left behind and the
-- aggregator knows the aggregate cannot be trusted. ARGV[3] is unique.
local guard = 'open:' .. ARGV[3]
redis.call('HSET', KEYS[1], guard, ARGV[2])

-- HSET straight from ARGV, at most 1000 pairs a call (Lua's unpack is
-- bounded by its C stack).
local i = 4
for k = 1, 4 do
  local first = i + 1
  local last = i + 2 * tonumber(ARGV[i])
  while first <= last do
    local to = math.min(first + 1999, last)
    redis.call('HSET', KEYS[k], unpack(ARGV, first, to))
    first = to + 1
  end
  i = last + 1
end
redis.call('HSET', KEYS[1], 'stream', ARGV[2])
redis.call('HDEL', KEYS[1], guard)
return {1, ARGV[2]}

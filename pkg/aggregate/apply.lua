#!lua
-- Apply one group of updates to a node's aggregate, atomically, if and only
-- if the node's stream mark is the one the caller expects.
--
-- KEYS: 1 mark hash, 2 series hash, 3 meta hash, 4 rejected hash (one slot).
-- ARGV: 1 expected stream mark, 2 new stream mark, 3 a unique nonce, then
-- six sections, each
-- a count n followed by n field/value pairs:
--   producer marks (producer id, batch seq)   -> HSET mark p:<id>
--   metadata (metric name, JSON)               -> HSETNX meta
--   float adds (field, delta)                  -> HINCRBYFLOAT series
--   integer adds (field, delta)                -> HINCRBY series
--   sets (field, value)                        -> HSET series
--   rejections (reason, count)                 -> HINCRBY rejected
--
-- The Go side validates and formats every argument, and the shebang makes
-- Redis refuse the whole script up front when it is out of memory, so no
-- write fails half way. An increment that would overflow to Inf is the one
-- failure left; it is caught per field and counted as a rejection, so the
-- script still completes and a replay decides the same.
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

local i = 4
local function section()
  local n = tonumber(ARGV[i])
  local first = i + 1
  i = first + 2 * n
  return first, n
end

local function hset_chunks(key, first, n, prefix)
  local chunk = {}
  for j = 0, n - 1 do
    chunk[#chunk + 1] = prefix .. ARGV[first + 2 * j]
    chunk[#chunk + 1] = ARGV[first + 2 * j + 1]
    if #chunk >= 1000 then
      redis.call('HSET', key, unpack(chunk))
      chunk = {}
    end
  end
  if #chunk > 0 then
    redis.call('HSET', key, unpack(chunk))
  end
end

local pfirst, pn = section()
local mfirst, mn = section()
for j = 0, mn - 1 do
  redis.call('HSETNX', KEYS[3], ARGV[mfirst + 2 * j], ARGV[mfirst + 2 * j + 1])
end
local overflow = 0
local ffirst, fn = section()
for j = 0, fn - 1 do
  local r = redis.pcall('HINCRBYFLOAT', KEYS[2], ARGV[ffirst + 2 * j], ARGV[ffirst + 2 * j + 1])
  if type(r) == 'table' and r.err then
    overflow = overflow + 1
  end
end
-- HINCRBY replicates (and goes to the AOF) as itself: relative. Redis
-- 7.0 can leave a torn transaction dangling in the AOF and apply it on a
-- later load, so replicate the result instead, which a replay overwrites.
local function incr(key, field, delta)
  redis.set_repl(redis.REPL_NONE)
  local r = redis.pcall('HINCRBY', key, field, delta)
  redis.set_repl(redis.REPL_ALL)
  if type(r) == 'table' and r.err then
    return r
  end
  redis.call('HSET', key, field, r)
  return r
end
local ifirst, inum = section()
for j = 0, inum - 1 do
  local r = incr(KEYS[2], ARGV[ifirst + 2 * j], ARGV[ifirst + 2 * j + 1])
  if type(r) == 'table' and r.err then
    overflow = overflow + 1
  end
end
local sfirst, sn = section()
hset_chunks(KEYS[2], sfirst, sn, '')
local rfirst, rn = section()
for j = 0, rn - 1 do
  incr(KEYS[4], ARGV[rfirst + 2 * j], ARGV[rfirst + 2 * j + 1])
end
if overflow > 0 then
  incr(KEYS[4], 'overflow', overflow)
end
redis.call('HSET', KEYS[1], 'stream', ARGV[2])
redis.call('HDEL', KEYS[1], guard)
hset_chunks(KEYS[1], pfirst, pn, 'p:')
return {1, ARGV[2]}

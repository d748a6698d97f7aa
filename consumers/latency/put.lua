-- KEYS[1]: a service's latency state.
-- ARGV: the seq read before the fold (verbatim; '' for no key or no seq,
-- '!<type>' for a key of another type), then the new seq, state, node and
-- observation time (Unix ns). Writes only if the key still holds what was
-- read, and replaces a key of another type. Returns 1 if it wrote.
local t = redis.call('TYPE', KEYS[1]).ok
local cur
if t == 'hash' then
  cur = redis.call('HGET', KEYS[1], 'seq') or ''
elseif t == 'none' then
  cur = ''
else
  cur = '!' .. t
end
if cur ~= ARGV[1] then
  return 0
end
if t ~= 'hash' then
  redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'seq', ARGV[2], 'state', ARGV[3], 'node', ARGV[4], 'at', ARGV[5])
return 1

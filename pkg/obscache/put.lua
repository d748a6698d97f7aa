-- Store a result if it is newer than the stored one.
-- KEYS[1]: the target's key.
-- ARGV[1]: observation time, Unix nanoseconds, 20 digits.
-- ARGV[2]: lease revision, 20 digits.
-- ARGV[3]: the encoded result.
-- ARGV[4]: expiry, Unix milliseconds.
-- Returns 1 if stored, 0 if the stored result is as new or newer.
local cur = redis.call('HMGET', KEYS[1], 'at', 'rev')
if cur[1] then
  if cur[1] > ARGV[1] or (cur[1] == ARGV[1] and cur[2] >= ARGV[2]) then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'at', ARGV[1], 'rev', ARGV[2], 'data', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1

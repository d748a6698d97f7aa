#!lua
-- Open a restore (Store.Restore) of a node's aggregate into a store that
-- holds no mark hash. KEYS: the mark hash. ARGV: the guard field. The guard
-- (value 0) stays until restore_close.lua deletes it with the marks in
-- place, so a restore that stops half way leaves the aggregate torn.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], '0')
return 1

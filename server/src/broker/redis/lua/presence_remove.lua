-- This instance's last connection of a user left a room.
-- KEYS: users, user. ARGV: instance, user.
-- Returns 1 if this removed the user's last presence (the caller announces the departure);
-- 0 if another instance still has them, or their departure was already announced.
local users, user_key = KEYS[1], KEYS[2]
local instance, user = ARGV[1], ARGV[2]
local now = now_ms()
redis.call('ZREM', user_key, instance)
redis.call('ZREMRANGEBYSCORE', user_key, '-inf', '(' .. int(now))
local latest = redis.call('ZRANGE', user_key, -1, -1, 'WITHSCORES')
if #latest > 0 then
  redis.call('ZADD', users, 'XX', latest[2], user)
  return 0
end
redis.call('DEL', user_key)
return redis.call('ZREM', users, user)

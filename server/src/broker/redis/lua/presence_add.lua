-- This instance has a first connection of a user in a room.
-- KEYS: users (zset user -> expiry, the latest of its instances'), user (zset instance ->
--       expiry).
-- ARGV: instance, user, presence ttl (ms).
-- Returns 1 if the user was not present (the caller announces them), else 0.
local users, user_key = KEYS[1], KEYS[2]
local instance, user, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local score = redis.call('ZSCORE', users, user)
local absent = (not score) or tonumber(score) < now
redis.call('ZREMRANGEBYSCORE', user_key, '-inf', '(' .. int(now))
redis.call('ZADD', user_key, int(now + ttl), instance)
keep(user_key, ttl)
redis.call('ZADD', users, 'GT', int(now + ttl), user)
keep(users, ttl)
if absent then
  return 1
end
return 0

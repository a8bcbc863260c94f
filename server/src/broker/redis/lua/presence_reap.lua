-- Remove users whose every instance stopped refreshing them (crashed, or cut off).
-- KEYS: users, then one user key per user in ARGV. ARGV: the users that looked expired.
-- Returns the users removed by this call: exactly one caller removes each, and announces the
-- departure.
local users = KEYS[1]
local now = now_ms()
local gone = {}
for i, user in ipairs(ARGV) do
  local user_key = KEYS[i + 1]
  local score = redis.call('ZSCORE', users, user)
  if score and tonumber(score) < now then
    redis.call('ZREMRANGEBYSCORE', user_key, '-inf', '(' .. int(now))
    local latest = redis.call('ZRANGE', user_key, -1, -1, 'WITHSCORES')
    if #latest > 0 then
      redis.call('ZADD', users, 'XX', latest[2], user)
    else
      redis.call('DEL', user_key)
      redis.call('ZREM', users, user)
      gone[#gone + 1] = user
    end
  end
end
return gone

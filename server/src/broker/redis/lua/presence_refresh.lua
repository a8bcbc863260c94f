-- Renew this instance's presence in a room, and keep the room's history alive while it has
-- members.
-- KEYS: users, meta, log, then one user key per user in ARGV.
-- ARGV: instance, presence ttl (ms), keep (ms), then the users with connections here.
-- Returns {users of ours that were absent (lost, or expired) and are present again (the
-- caller announces them), other users whose presence expired (at most 100; see reap)}.
local users, meta, log = KEYS[1], KEYS[2], KEYS[3]
local instance, ttl, keep_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local absent = {}
for i = 4, #ARGV do
  local user, user_key = ARGV[i], KEYS[i]
  local score = redis.call('ZSCORE', users, user)
  if (not score) or tonumber(score) < now then
    absent[#absent + 1] = user
  end
  redis.call('ZADD', user_key, int(now + ttl), instance)
  keep(user_key, ttl)
  redis.call('ZADD', users, 'GT', int(now + ttl), user)
end
keep(users, ttl)
keep(meta, keep_ms)
keep(log, keep_ms)
local expired = redis.call('ZRANGEBYSCORE', users, '-inf', '(' .. int(now), 'LIMIT', 0, 100)
return {absent, expired}

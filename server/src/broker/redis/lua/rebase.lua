-- Start a new epoch for a room whose sequence went back within `epoch`: an instance read it
-- behind what it had already delivered, so the numbers it reuses would be dropped as seen.
-- The new epoch continues nothing: where the history went back is unknown. Done once,
-- whichever instance asks first.
-- KEYS: meta, channel.
-- ARGV: the epoch that went back, the new epoch.
-- Returns the room's epoch ('0' for a room without history).
local meta, channel = KEYS[1], KEYS[2]
local epoch = redis.call('HGET', meta, 'epoch')
if epoch ~= ARGV[1] then
  return epoch or '0'
end
redis.call('HSET', meta, 'epoch', ARGV[2])
redis.call('HDEL', meta, 'prev', 'base')
redis.call(PUBLISH, channel, RESET .. varint(tonumber(ARGV[2])))
return ARGV[2]

-- Publish one message, atomically: deduplicate, number, store, deliver.
-- KEYS: meta, log, dedupe, channel.
-- ARGV: new epoch (used if the room has no history), message prefix (variant and room),
--       message suffix (id, sender, ts, body), history size, history ttl (ms), dedupe
--       window (ms), keep (ms: how long the room outlives its last publish), deadline (ms
--       on the Unix clock: past it, the publishing instance has answered `unavailable`).
-- Returns {epoch, seq, duplicate (1: an earlier publish of this (sender, id), whose seq this
-- is; nothing was published)}.
local meta, log, dedupe, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local size, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local window, keep_ms = tonumber(ARGV[6]), tonumber(ARGV[7])

-- A call that reaches Redis after its instance gave up (queued behind a stalled Redis, or
-- sent on a connection that came back) must not publish what its client was told failed.
local now = now_ms()
if now > tonumber(ARGV[8]) then
  return redis.error_reply('EXPIRED the publishing instance no longer waits for this call')
end

local epoch = ensure_meta(meta, log, channel, ARGV[1], keep_ms)
local seen = redis.call('GET', dedupe)
if seen then
  local seen_epoch, seen_seq = string.match(seen, '^(%d+):(%d+)$')
  -- The same message, in this epoch or in the one it continues.
  if seen_epoch == epoch or carried(meta, seen_epoch, tonumber(seen_seq)) then
    -- A write all the same, after the original's in the replication stream: an instance
    -- that waits for replicas (WAIT) to acknowledge this call then knows they have both.
    redis.call('PEXPIRE', dedupe, int(window))
    return {epoch, tonumber(seen_seq), 1}
  end
end

local seq = redis.call('HINCRBY', meta, 'seq', 1)
-- Byte for byte the postcard encoding of ServerMessage::Message (envelope.rs proves it).
local message = ARGV[2] .. varint(seq) .. ARGV[3]
if size > 0 and ttl > 0 then
  redis.call('XADD', log, 'MAXLEN', int(size), entry_id(seq), 't', int(now), 'f', message)
  trim_expired(log, now - ttl)
end
-- Published from inside the script: the channel carries one room's messages in seq order,
-- whichever instance published them.
redis.call(PUBLISH, channel, MESSAGE .. varint(tonumber(epoch)) .. varint(seq) .. message)
if window > 0 then
  redis.call('SET', dedupe, epoch .. ':' .. int(seq), 'PX', int(window))
end
keep(meta, keep_ms)
keep(log, keep_ms)
return {epoch, seq, 0}

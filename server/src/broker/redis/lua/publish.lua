-- Publish messages, each in one atomic step: deduplicate, number, store, deliver. One call
-- carries the publishes an instance had waiting (batch.rs), in the order given; they share
-- the call's fixed cost, its clock read and the history id of the fence (ensure_meta).
-- KEYS, four per publish: meta, log, dedupe, channel.
-- ARGV, eight per publish: new epoch (used if the room has no history), message prefix
--       (variant and room), message suffix (id, sender, ts, body), history size, history
--       ttl (ms), dedupe window (ms), keep (ms: how long the room outlives its last
--       publish), deadline (ms on the Unix clock: past it, the publishing instance no longer
--       waits for this publish).
-- Returns one {epoch, seq, outcome} per publish. Outcome 0: published. 1: a duplicate, an
-- earlier publish of this (sender, id), whose seq this is; nothing was published. 2: the
-- call began past this publish's deadline, and nothing was done (epoch and seq are 0). 3:
-- Redis refused one of the publish's commands (its error follows), and the publish may be
-- partly done, as when a whole call fails.
--
-- Every publish runs this, so it makes as few calls as it can (each redis.call costs more
-- than the Lua around it), and numeric arguments are passed on as the decimal text they
-- arrived as (a Lua number goes back to text through sprintf).

-- now_ms() as decimal text, without parsing TIME's two numbers and formatting their sum:
-- the seconds, then the first three of the microseconds' six digits.
local function now_ms_text()
  local time = redis.call('TIME')
  return time[1] .. string.sub('00000' .. time[2], -6, -4)
end

-- A publish that reaches Redis after its instance gave up (queued behind a stalled Redis,
-- or sent on a connection that came back) must not publish what its client was told
-- failed, nor be acknowledged late.
local at = now_ms_text()
local now = tonumber(at)

-- The dedupe key the publish under way has claimed.
local claimed

local function publish(k, a)
  local meta, log, dedupe, channel = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local size, ttl, window, keep_ms = ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  if now > tonumber(ARGV[a + 8]) then
    return {0, 0, 2}
  end

  local keep = tonumber(keep_ms)
  local epoch, kept, last = ensure_meta(meta, log, channel, ARGV[a + 1], keep)
  local seq = tonumber(last or 0) + 1
  local seq_text, seq_varint = int(seq), varint(seq)
  if window ~= '0' then
    -- Claimed for this publish in the same command that finds an earlier one's: SET NX GET
    -- (Redis 7.0) sets the key only if missing, and answers what it held.
    local claim = epoch .. ':' .. seq_text
    local seen = redis.call('SET', dedupe, claim, 'NX', 'GET', 'PX', window)
    if seen then
      local seen_epoch, seen_seq = string.match(seen, '^(%d+):(%d+)$')
      -- The same message, in this epoch or in the one it continues.
      if seen_epoch == epoch or carried(meta, seen_epoch, tonumber(seen_seq)) then
        -- A write all the same, after the original's in the replication stream: an
        -- instance that waits for replicas (WAIT) to acknowledge this call then knows
        -- they have both.
        redis.call('PEXPIRE', dedupe, window)
        return {epoch, tonumber(seen_seq), 1}
      end
      -- Of a history this room no longer continues: this publish is new.
      redis.call('SET', dedupe, claim, 'PX', window)
    end
    -- Released if this publish fails after all (below).
    claimed = dedupe
  end
  -- Byte for byte the postcard encoding of ServerMessage::Message (envelope.rs proves it).
  local message = ARGV[a + 2] .. seq_varint .. ARGV[a + 3]
  if size ~= '0' and ttl ~= '0' then
    local id = seq_text .. '-0'
    -- MAXLEN ~: Redis frees a stream's memory a whole node at a time (stream-node-max-entries,
    -- stream-node-max-bytes), and exact trimming only marks entries deleted inside the head
    -- node, which every later XADD and XRANGE of the head then walks over. Approximate
    -- trimming drops whole nodes only: the same memory, without the walk. Readers never see
    -- more than `size` entries: they read from lowest_kept(seq, size).
    -- NOMKSTREAM: a log this call creates gets its expiry here, so the PEXPIREAT ... GT
    -- below (which never sets one on a key without) finds one on every log.
    if not redis.call('XADD', log, 'NOMKSTREAM', 'MAXLEN', '~', size, id, 't', at, 'f', message) then
      redis.call('XADD', log, id, 't', at, 'f', message)
      redis.call('PEXPIRE', log, keep_ms)
      kept = nil
    end
    -- Expired entries are dropped by every 16th publish, and by every read before it reads
    -- (read.lua, page.lua): no reader sees one, and a busy room does not pay an XRANGE of
    -- its oldest entry on every publish.
    if seq % 16 == 0 then
      trim_expired(log, now - tonumber(ttl))
    end
  end
  -- The seq is taken once the message is in the log: a publish the log refuses takes none.
  redis.call('HSET', meta, 'seq', seq_text)
  -- Published from inside the script: the channel carries one room's messages in seq order,
  -- whichever instance published them.
  redis.call(PUBLISH, channel, MESSAGE .. varint(tonumber(epoch)) .. seq_varint .. message)
  -- The room outlives this publish by `keep` at least. Not a PEXPIRE of both keys by every
  -- publish: `kept` (in meta) records until when both are kept, and they are renewed, to a
  -- sixteenth of `keep` beyond, only once fewer than `keep` remain. GT never shortens an
  -- expiry; meta and log always carry one (ensure_meta and the XADD above give them one,
  -- and a log created here renews both).
  if not kept or tonumber(kept) < now + keep then
    local until_ms = int(now + keep + math.floor(keep / 16))
    redis.call('PEXPIREAT', meta, until_ms, 'GT')
    redis.call('PEXPIREAT', log, until_ms, 'GT')
    redis.call('HSET', meta, 'kept', until_ms)
  end
  claimed = nil
  return {epoch, seq, 0}
end

-- A publish that fails (a command refused: out of memory, read-only, a key of the wrong
-- type) answers for itself, and the call goes on with the next.
local outcomes = {}
for i = 0, #KEYS / 4 - 1 do
  local ok, outcome = pcall(publish, 4 * i, 8 * i)
  if not ok and claimed then
    -- A resend must not be answered as a duplicate of what was not published.
    redis.pcall('DEL', claimed)
    claimed = nil
  end
  if not ok then
    outcome = {0, 0, 3, type(outcome) == 'table' and outcome.err or tostring(outcome)}
  end
  outcomes[i + 1] = outcome
end
return outcomes

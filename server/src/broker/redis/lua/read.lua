-- A room's position (creating its history if it has none) and what a resume from `since`
-- replays. Used by joins and by an instance catching its members up.
-- KEYS: meta, log, channel, users.
-- ARGV: new epoch, keep (ms), history size, history ttl (ms), since epoch ('' for none),
--       since seq, members ('1': also list the members present).
-- Returns {epoch, seq, oldest retained seq (seq + 1 if none), {seq, message, seq, message, ...}
-- oldest first, {members}, the epoch this one continues ('' for none), the sequence up to
-- which it does}.
local meta, log, channel, users = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local keep_ms, size, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])

local epoch = ensure_meta(meta, log, channel, ARGV[1], keep_ms)
keep(meta, keep_ms)
keep(log, keep_ms)
local found = redis.call('HMGET', meta, 'seq', 'prev', 'base')
local seq, prev, base = tonumber(found[1]), found[2] or '', tonumber(found[3] or 0)
local now = now_ms()
trim_expired(log, now - ttl)
local oldest = oldest_retained(log, seq, size)

local entries = {}
if ARGV[5] ~= '' then
  -- The selection of history::plan_resume: after `since` in the same history; in the
  -- history this one continues, after what both hold; or all that is retained of another
  -- one (or of a position it never reached).
  local since_seq = tonumber(ARGV[6])
  local from = 0
  if ARGV[5] == epoch and since_seq <= seq then
    from = since_seq
  elseif ARGV[5] == prev then
    from = math.min(since_seq, base)
  end
  local start = math.max(from + 1, oldest)
  if start <= seq then
    for _, entry in ipairs(redis.call('XRANGE', log, entry_id(start), '+')) do
      entries[#entries + 1] = seq_of(entry[1])
      entries[#entries + 1] = entry[2][4]
    end
  end
end

local members = {}
if ARGV[7] == '1' then
  members = redis.call('ZRANGEBYSCORE', users, int(now), '+inf')
end
return {epoch, seq, oldest, entries, members, prev, base}

-- Candidates for a history page: the newest retained messages below `before`. Never
-- creates the room's history.
-- KEYS: meta, log.
-- ARGV: history size, history ttl (ms), before epoch ('' for none), before seq, limit.
-- Returns {epoch ('0' for a room without history), seq, {seq, message, ...} newest first, at
-- most `limit` of them, older (1: more retained messages precede the last one)}.
local meta, log = KEYS[1], KEYS[2]
local size, ttl, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[5])

local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  return {'0', 0, {}, 0}
end
local seq = tonumber(redis.call('HGET', meta, 'seq'))
if ARGV[3] ~= '' and ARGV[3] ~= epoch then
  -- Another history: the caller refuses the request (history::page_end).
  return {epoch, seq, {}, 0}
end
trim_expired(log, now_ms() - ttl)
local lo = lowest_kept(seq, size)
local hi = seq
if ARGV[3] ~= '' then
  hi = math.min(hi, tonumber(ARGV[4]) - 1)
end
if hi < lo then
  return {epoch, seq, {}, 0}
end
local rows = redis.call('XREVRANGE', log, entry_id(hi), entry_id(lo), 'COUNT', limit + 1)
local entries = {}
for i = 1, math.min(#rows, limit) do
  entries[#entries + 1] = seq_of(rows[i][1])
  entries[#entries + 1] = rows[i][2][4]
end
local older = 0
if #rows > limit then
  older = 1
end
return {epoch, seq, entries, older}

-- Shared by every Chorus script: prepended to each (scripts.rs). Keys are those of one room,
-- all with the room's hash tag, so every script runs within one Redis Cluster slot.

-- Milliseconds on Redis's clock. Ages (history ttl, presence expiry) are measured by this
-- one clock that every instance shares, never by an instance's own.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An integer as decimal text. Lua 5.1 numbers are doubles and `..` writes those above 1e14
-- in exponent notation; '%d' writes every integer below 2^53 exactly.
local function int(n)
  return string.format('%d', n)
end

-- The unsigned LEB128 varint of n, as postcard writes integers: 7 bits per byte, least
-- significant group first, the high bit set on every byte but the last. Exact below 2^53.
-- The bytes travel as return values, not in a table: every publish writes two varints, and
-- a table per varint (built, concatenated, collected) cost 6 % of a publish.
local function varint_bytes(n)
  if n < 128 then
    return n
  end
  return n % 128 + 128, varint_bytes(math.floor(n / 128))
end

local function varint(n)
  return string.char(varint_bytes(n))
end

-- Keep an existing key for at least `ms` more milliseconds (never shorten its life).
local function keep(key, ms)
  local left = redis.call('PTTL', key)
  if left ~= -2 and left < ms then
    redis.call('PEXPIRE', key, ms)
  end
end

-- Log entries have the id '<seq>-0' and the fields t (publication time, ms) and f (the encoded
-- Message).
local function entry_id(seq)
  return int(seq) .. '-0'
end

local function seq_of(id)
  return tonumber(string.match(id, '^(%d+)'))
end

-- Envelope tags on a room's channel (envelope.rs).
local MESSAGE, RESET = '\1', '\3'

-- The replication id of this Redis: the identity of its history. Redis makes a new one
-- whenever its data may no longer follow what it acknowledged: at a start (from an RDB or
-- AOF, the old one kept only as replid2 for replicas' partial resyncs), and when a replica
-- is promoted; another node, another history, has its own. INFO replication rather than
-- the run id of INFO server: half the cost (about 2 us per call against 4.5). Read once per
-- script call (a call is atomic: it cannot change within one), which a call carrying many
-- publishes shares.
local replid
local function history_id()
  if not replid then
    -- A plain find rather than a pattern, which Lua tries at every offset of the text;
    -- replication ids are 40 hex digits.
    local info = redis.call('INFO', 'replication')
    local at = string.find(info, 'master_replid:', 1, true)
    replid = string.sub(info, at + 14, at + 53)
  end
  return replid
end

-- The room's epoch, creating the room's history in epoch `new_epoch` when it has none. A new
-- history is announced on the channel before anything happens in it, so every subscribed
-- instance learns of the epoch change before the first message of the new epoch.
--
-- `meta` also names the Redis history that last wrote it (`rid`). A history found written by
-- another one came back from a snapshot, a replica promoted by a failover, or another
-- node (a slot migration): it may lack the last messages acknowledged, and reusing their
-- sequence numbers would make clients drop the new messages as already seen. So the room
-- goes on in a new epoch, which continues the old one: `prev` is the old epoch and `base`
-- the sequence this copy reached, up to which both histories hold the same messages.
--
-- Also returns `kept` (publish.lua: until when meta and log are known to be kept) and the
-- room's last sequence number.
local function ensure_meta(meta, log, channel, new_epoch, keep_ms)
  local found = redis.call('HMGET', meta, 'epoch', 'rid', 'seq', 'kept')
  local here = history_id()
  if found[1] and found[2] == here then
    return found[1], found[4], found[3]
  end
  if found[1] then
    redis.call('HSET', meta, 'epoch', new_epoch, 'rid', here, 'prev', found[1],
      'base', found[3] or 0)
  else
    redis.call('DEL', log)
    redis.call('HSET', meta, 'epoch', new_epoch, 'seq', 0, 'rid', here)
    redis.call('PEXPIRE', meta, keep_ms)
  end
  redis.call(PUBLISH, channel, RESET .. varint(tonumber(new_epoch)))
  return new_epoch, nil, found[3] or 0
end

-- Whether position (epoch, seq) of an earlier history is the same message as `seq` of the
-- room's history: the room continues that epoch (`prev`), up to `base`.
local function carried(meta, epoch, seq)
  local lineage = redis.call('HMGET', meta, 'prev', 'base')
  return lineage[1] == epoch and seq <= tonumber(lineage[2])
end

-- Drop the log's head entries published before `cutoff` (ms).
local function trim_expired(log, cutoff)
  -- Usually the oldest entry is still young: one entry read, not a batch (every publish
  -- runs this, and converting a batch of entries to Lua is most of a publish's cost).
  local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  if #oldest == 0 or tonumber(oldest[1][2][2]) >= cutoff then
    return
  end
  while true do
    local head = redis.call('XRANGE', log, '-', '+', 'COUNT', 64)
    if #head == 0 then
      return
    end
    for i, entry in ipairs(head) do
      if tonumber(entry[2][2]) >= cutoff then
        if i > 1 then
          redis.call('XTRIM', log, 'MINID', entry[1])
        end
        return
      end
    end
    redis.call('XTRIM', log, 'MINID', entry_id(seq_of(head[#head][1]) + 1))
    if #head < 64 then
      return
    end
  end
end

-- The lowest sequence a log at `seq` may retain under a size of `size`.
local function lowest_kept(seq, size)
  return math.max(seq - size + 1, 1)
end

-- The oldest retained sequence (after trim_expired), or seq + 1 when nothing is retained.
local function oldest_retained(log, seq, size)
  local first = redis.call('XRANGE', log, entry_id(lowest_kept(seq, size)), '+', 'COUNT', 1)
  if #first == 0 then
    return seq + 1
  end
  return seq_of(first[1][1])
end

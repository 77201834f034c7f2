"""The Lua scripts of the Redis adapter (store/redis.py): each runs atomically on the Redis server, so
creation, counters, compare-and-set, scans that skip expired records and the queue's claims hold across
every node. Kept apart from the adapter's Python so both stay readable; `LIVE` is the shared prelude that
treats a record whose "e" (expiry, epoch seconds) has passed as absent."""

# A record is live when it exists and its "e" is null or later than ARGV now.
LIVE = """
local function live(raw, now)
  if not raw then return nil end
  local rec = cjson.decode(raw)
  if type(rec.e) == 'number' and rec.e <= now then return nil end
  return rec
end
"""

# KEYS: record, index  ARGV: member, now, envelope, px ('' for none)
CREATE = (
    LIVE
    + """
if live(redis.call('GET', KEYS[1]), tonumber(ARGV[2])) then return 0 end
if ARGV[4] == '' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""
)

# KEYS: record, index  ARGV: member, now
INCR = (
    LIVE
    + """
local rec = live(redis.call('GET', KEYS[1]), tonumber(ARGV[2]))
local n = 0
if rec and rec.v ~= nil and rec.v.n ~= nil then n = rec.v.n end
n = n + 1
redis.call('SET', KEYS[1], '{"e":null,"v":{"n":' .. string.format('%d', n) .. '}}')
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return n
"""
)

# KEYS: record, index  ARGV: member, now
DELETE = (
    LIVE
    + """
local raw = redis.call('GET', KEYS[1])
local found = live(raw, tonumber(ARGV[2]))
if raw then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
if found then return 1 end
return 0
"""
)

# KEYS: index  ARGV: record key prefix, lex min, lex max, now  →  flat list key, value, key, value…
SCAN = (
    LIVE
    + """
local keys = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3])
local out = {}
local now = tonumber(ARGV[4])
for i = 1, #keys, 500 do
  local chunk = {}
  for j = i, math.min(i + 499, #keys) do chunk[#chunk + 1] = ARGV[1] .. keys[j] end
  local raws = redis.call('MGET', unpack(chunk))
  for j = 1, #chunk do
    local key = keys[i + j - 1]
    local raw = raws[j]
    if not raw then
      redis.call('ZREM', KEYS[1], key)
    elseif live(raw, now) then
      out[#out + 1] = key
      out[#out + 1] = raw
    end
  end
end
return out
"""
)

# KEYS: index  ARGV: record key prefix, start, count  →  {members looked at, removed}
PRUNE = """
local keys = redis.call('ZRANGE', KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[2]) + tonumber(ARGV[3]) - 1)
local removed = 0
for _, key in ipairs(keys) do
  if redis.call('EXISTS', ARGV[1] .. key) == 0 then
    redis.call('ZREM', KEYS[1], key)
    removed = removed + 1
  end
end
return {#keys, removed}
"""

# KEYS: queue hash  ARGV: key, lane key prefix, lane, score, item JSON, replace ('1'/'0')
ENQUEUE = """
local old = redis.call('HGET', KEYS[1], 'i:' .. ARGV[1])
if old then
  if ARGV[6] ~= '1' then return 0 end
  redis.call('ZREM', ARGV[2] .. cjson.decode(old)[1], ARGV[1])
  redis.call('HDEL', KEYS[1], 'c:' .. ARGV[1])
end
redis.call('HSET', KEYS[1], 'i:' .. ARGV[1], ARGV[5])
redis.call('ZADD', ARGV[2] .. ARGV[3], ARGV[4], ARGV[1])
return 1
"""

# KEYS: queue hash  ARGV: lane key prefix, max score, claim JSON, lane…  →  {key, item JSON} or nil
# Byte-wise comparison: Lua's `<` on strings follows the server's collation locale.
CLAIM_FIRST = """
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local best, best_score, best_lane
for i = 4, #ARGV do
  local hit = redis.call('ZRANGEBYSCORE', ARGV[1] .. ARGV[i], '-inf', ARGV[2], 'WITHSCORES', 'LIMIT', 0, 1)
  if hit[1] then
    local score = tonumber(hit[2])
    if best == nil or score < best_score or (score == best_score and before(hit[1], best)) then
      best, best_score, best_lane = hit[1], score, ARGV[i]
    end
  end
end
if best == nil then return nil end
redis.call('ZREM', ARGV[1] .. best_lane, best)
redis.call('HSET', KEYS[1], 'c:' .. best, ARGV[3])
return {best, redis.call('HGET', KEYS[1], 'i:' .. best)}
"""

# KEYS: queue hash  ARGV: key, lane key prefix, claim JSON, any lane ('1'/'0'), lane…  →  item JSON or nil
CLAIM_ITEM = """
local item = redis.call('HGET', KEYS[1], 'i:' .. ARGV[1])
if not item or redis.call('HEXISTS', KEYS[1], 'c:' .. ARGV[1]) == 1 then return nil end
local lane = cjson.decode(item)[1]
if ARGV[4] ~= '1' then
  local allowed = false
  for i = 5, #ARGV do if ARGV[i] == lane then allowed = true end end
  if not allowed then return nil end
end
redis.call('ZREM', ARGV[2] .. lane, ARGV[1])
redis.call('HSET', KEYS[1], 'c:' .. ARGV[1], ARGV[3])
return item
"""

# KEYS: queue hash  ARGV: key, lane key prefix, only unclaimed ('1'/'0'), claimant ('' for any)
# ARGV[5] = '1' when a claimant is given (it may be the empty string).
DEQUEUE = """
local item = redis.call('HGET', KEYS[1], 'i:' .. ARGV[1])
if not item then return 0 end
local claim = redis.call('HGET', KEYS[1], 'c:' .. ARGV[1])
if claim and ARGV[3] == '1' then return 0 end
if ARGV[5] == '1' and (not claim or cjson.decode(claim)[1] ~= ARGV[4]) then return 0 end
redis.call('HDEL', KEYS[1], 'i:' .. ARGV[1], 'c:' .. ARGV[1])
redis.call('ZREM', ARGV[2] .. cjson.decode(item)[1], ARGV[1])
return 1
"""

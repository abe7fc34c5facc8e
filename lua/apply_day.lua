-- apply_day: replace one local day of a practitioner's slot starts, for each listed visit type, atomically.
-- Bookings and holds live in the claims zset and are never touched here.
-- KEYS: 1 schedule hash  2 availability versions, then one base zset per visit type
-- ARGV: 1 generation (from put_schedule; '' = any)  2 day_start_s  3 day_end_s (exclusive)
--       then per base zset: the number of starts, followed by the starts
-- Returns {'OK'} | {'STALE'} when a newer schedule generation exists.
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return {'STALE'} end
local pos = 4
bump(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))
for k = 3, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[k], ARGV[2], '(' .. ARGV[3])
  local count = tonumber(ARGV[pos])
  local batch = {}
  for i = pos + 1, pos + count do
    batch[#batch + 1] = ARGV[i]
    batch[#batch + 1] = ARGV[i]
    if #batch >= 1000 then redis.call('ZADD', KEYS[k], unpack(batch)); batch = {} end
  end
  if #batch > 0 then redis.call('ZADD', KEYS[k], unpack(batch)) end
  pos = pos + count + 1
end
local until_s = tonumber(redis.call('HGET', KEYS[1], 'until') or 0)
if tonumber(ARGV[3]) > until_s then redis.call('HSET', KEYS[1], 'until', ARGV[3]) end
return {'OK'}

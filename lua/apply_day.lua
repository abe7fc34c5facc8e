-- apply_day: replace one local day of a practitioner's slot starts, for each listed visit type, atomically.
-- Bookings and holds live in the claims zset and are never touched here. While entries wait, the starts this
-- adds (there before: not new) are offered to the waitlist first (cause 'schedule').
-- KEYS: 1 schedule hash  2 availability versions, then one base zset per listed visit type (m), then the waitlist
--       kit of the practitioner (wl_kit)
-- ARGV: 1 generation (from put_schedule; '' = any)  2 day_start_s  3 day_end_s (exclusive)  4 m  5 now_ms
--       6 actor  7 request_id, then per base zset: the number of starts, followed by the starts; then the kit
-- Returns {'OK'} | {'STALE'} when a newer schedule generation exists | {'KIT'} (nothing changed)
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'gen') ~= ARGV[1] then return {'STALE'} end
local m = tonumber(ARGV[4])
local pos = 8
for k = 3, 2 + m do pos = pos + tonumber(ARGV[pos]) + 1 end
local kit = wl_kit(3 + m, pos)
if kit.on and not kit.ok then return {'KIT'} end
local vt_of, added = {}, {}
if kit.on then
  for vt, key in pairs(kit.base) do vt_of[key] = vt end
end
pos = 8
bump(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]))
for k = 3, 2 + m do
  local vt, before = vt_of[KEYS[k]], nil
  if vt then
    before = {}
    for _, s in ipairs(redis.call('ZRANGEBYSCORE', KEYS[k], ARGV[2], '(' .. ARGV[3])) do before[s] = true end
    added[vt] = {}
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[k], ARGV[2], '(' .. ARGV[3])
  local count = tonumber(ARGV[pos])
  local batch = {}
  for i = pos + 1, pos + count do
    batch[#batch + 1] = ARGV[i]
    batch[#batch + 1] = ARGV[i]
    if before and not before[ARGV[i]] then added[vt][#added[vt] + 1] = ARGV[i] end
    if #batch >= 1000 then redis.call('ZADD', KEYS[k], unpack(batch)); batch = {} end
  end
  if #batch > 0 then redis.call('ZADD', KEYS[k], unpack(batch)) end
  pos = pos + count + 1
end
local until_s = tonumber(redis.call('HGET', KEYS[1], 'until') or 0)
if tonumber(ARGV[3]) > until_s then redis.call('HSET', KEYS[1], 'until', ARGV[3]) end
offer_freed(kit, tonumber(ARGV[5]), ARGV[6], ARGV[7], 'schedule', function(vt) return added[vt] or {} end)
return {'OK'}

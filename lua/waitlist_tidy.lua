-- waitlist_tidy: take an ended waitlist entry (booked, left, or its window passed) out of Redis once the database
-- holds its current version (persistence/waitlist_tidy.py); it is read from the database afterwards.
-- KEYS: 1 waitlist entries  2 waitlist queue  3 waitlist index  4 waiting entries
-- ARGV: 1 entry_id  2 version the database holds  3 now_ms
-- Returns {'OK'} (removed) | {'KEEP', 'missing' | 'live' (queued, offered, or its window not passed) | 'unstored'}
local e = wl_get(KEYS[1], ARGV[1])
if not e then return {'KEEP', 'missing'} end
if tonumber(e.version) ~= tonumber(ARGV[2]) then return {'KEEP', 'unstored'} end
local ended = e.spans[#e.spans][2] * 1000 <= tonumber(ARGV[3])
if e.status ~= 'booked' and e.status ~= 'left' and not (e.status == 'waiting' and ended) then
  return {'KEEP', 'live'}
end
wl_unqueue({queue = KEYS[2], ix = KEYS[3], wait = KEYS[4]}, e)
redis.call('HDEL', KEYS[1], ARGV[1])
return {'OK'}

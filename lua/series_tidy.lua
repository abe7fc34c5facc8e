-- series_tidy: take a booked series out of Redis once every occurrence's appointment left it (the retention tidy,
-- persistence/retention.py: each ended before the cut and the database held it), only when the database holds the
-- series too (the caller checked); it is read from the database afterwards (persistence/archive.py).
-- KEYS: 1 series hash, then one appointment hash per occurrence (in the series' order)
-- ARGV: 1 the series' appointment ids as the caller read them (comma-separated)
-- Returns {'OK'} (removed) | {'KEEP', 'missing' | 'held' (not booked: a held series expires with its holds)
--       | 'changed' (its appointments are not the ones read) | 'live' (an occurrence is still in Redis)}
local s = redis.call('HMGET', KEYS[1], 'state', 'appointments')
if not s[1] then return {'KEEP', 'missing'} end
if s[1] ~= 'booked' then return {'KEEP', 'held'} end
if s[2] ~= ARGV[1] then return {'KEEP', 'changed'} end
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then return {'KEEP', 'live'} end
end
redis.call('DEL', KEYS[1])
return {'OK'}

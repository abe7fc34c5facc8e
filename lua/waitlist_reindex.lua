-- waitlist_reindex: index a practice's live entries (T:wl:ix, T:wl:waiting) once, for entries that joined before
-- the index existed (docs/waitlist.md, "The index"; run by the sweeper while T:wl:stats lacks 'indexed').
-- Idempotent: members already there stay; entries no longer queued are left alone.
-- KEYS: 1 waitlist queue  2 waitlist entries  3 waitlist stats  4 waitlist index  5 waiting entries
-- ARGV: (none)
-- Returns the number of entries indexed.
if redis.call('HGET', KEYS[3], 'indexed') == '1' then return 0 end
local n = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local e = wl_get(KEYS[2], id)
  if e and (e.status == 'waiting' or e.status == 'offered') then
    wl_index(KEYS[4], e, true)
    if e.status == 'waiting' then wl_waiting(KEYS[5], e, true) end
    n = n + 1
  end
end
redis.call('HSET', KEYS[3], 'indexed', '1')
return n

-- restore_series: put back a booked series Redis lost (reconciliation), never over one Redis holds.
-- KEYS: 1 series hash
-- ARGV: 1.. field, value pairs (the hash as series_book.lua leaves it)
-- Returns {'OK'} | {'SKIP'} (Redis holds it)
if redis.call('EXISTS', KEYS[1]) == 1 then return {'SKIP'} end
redis.call('HSET', KEYS[1], unpack(ARGV))
return {'OK'}

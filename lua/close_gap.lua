-- close_gap: forget a stream gap that its consumer group caught up on from the database
-- (persistence/notify/catchup.py), unless a trim widened it meanwhile.
-- KEYS: 1 stream gaps hash
-- ARGV: 1 group  2 the gap as the caller read it ('<from_ms>:<to_ms>')
-- Returns {'OK'} | {'CHANGED', the gap now or ''}
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur ~= ARGV[2] then return {'CHANGED', cur or ''} end
redis.call('HDEL', KEYS[1], ARGV[1])
return {'OK'}

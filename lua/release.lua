-- release: give a live hold's interval back at once.
-- KEYS: 1 hold hash  2 claims zset (the hold's practitioner)  3 hold expiry zset  4 events  5 audit
--       6 availability versions (the hold's practitioner)
-- ARGV: 1 now_ms  2 hold_id  3 actor  4 request_id
-- Returns {'OK'} | {'NOT_FOUND'} | {'USED', appointment_id} | {'GONE', state}
local now = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'state', 'end', 'expires_ms', 'appointment_id', 'practice_id',
  'practitioner_id', 'start')
local state = h[1]
if not state then return {'NOT_FOUND'} end
if state == 'booked' then return {'USED', h[4]} end
if state ~= 'held' then return {'GONE', state} end
if tonumber(h[3]) <= now then return {'GONE', 'expired'} end
redis.call('HSET', KEYS[1], 'state', 'released')
redis.call('ZREM', KEYS[2], 'h|' .. ARGV[2] .. '|' .. h[2] .. '|' .. h[3])
redis.call('ZREM', KEYS[3], ARGV[2])
bump(KEYS[6], tonumber(h[7]), tonumber(h[2]))
emit(KEYS[4], KEYS[5], ARGV[1], 'release', ARGV[3], h[5], h[6], ARGV[2], nil, ARGV[4], {}, nil)
return {'OK'}

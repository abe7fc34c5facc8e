-- waitlist_join: put a patient's entry on the practice's waitlist ('waiting'), last in the join order.
-- KEYS: 1 waitlist queue  2 waitlist entries  3 waitlist stats  4 events  5 audit
-- ARGV: 1 now_ms  2 entry_id  3 entry json (engine.model.WaitlistRecord, 'patient' last; its order is set here)
--       4 actor  5 request_id
-- A retry of the same call (same entry_id) answers {'OK', order} again and changes nothing.
-- Returns {'OK', order}
local now = tonumber(ARGV[1])
local had = wl_get(KEYS[2], ARGV[2])
if had then return {'OK', int(had.order)} end
local e, patient = wl_split(ARGV[3])
local order = redis.call('HINCRBY', KEYS[3], 'joined', 1)
e.order, e.status, e.version, e.joined_ms = order, 'waiting', 0, now
redis.call('ZADD', KEYS[1], order, ARGV[2])
wl_change({entries = KEYS[2], events = KEYS[4], audit = KEYS[5]}, e, patient, now, 'waitlist_join', ARGV[4],
  ARGV[5], e.practitioner_id ~= cjson.null and e.practitioner_id or nil, nil, nil, {})
return {'OK', int(order)}

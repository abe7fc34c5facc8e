-- waitlist_join: put a patient's entry on the practice's waitlist ('waiting'), last in the join order, indexed
-- for the offer walk (docs/waitlist.md, "The index"), within the caps on live entries.
-- KEYS: 1 waitlist queue  2 waitlist entries  3 waitlist stats  4 events  5 audit  6 waitlist index
--       7 waiting entries  8 the joining client's entry set (any key of the practice when ARGV[8] is '')
-- ARGV: 1 now_ms  2 entry_id  3 entry json (engine.model.WaitlistRecord, 'patient' last; its order is set here)
--       4 actor  5 request_id  6 most live entries of the practice (0: no cap)  7 most live entries of one client
--       8 the client ('' none: staff, admin, the engine; not capped per client)
-- A retry of the same call (same entry_id) answers {'OK', order} again and changes nothing.
-- Returns {'OK', order} | {'FULL', 'practice' | 'client', cap} (nothing changed)
local now = tonumber(ARGV[1])
local had = wl_get(KEYS[2], ARGV[2])
if had then return {'OK', int(had.order)} end
local practice_cap, client_cap = tonumber(ARGV[6]), tonumber(ARGV[7])
if practice_cap > 0 and redis.call('ZCARD', KEYS[1]) >= practice_cap then return {'FULL', 'practice', ARGV[6]} end
local e, patient = wl_split(ARGV[3])
if ARGV[8] ~= '' then
  -- the client's set keeps its live entries (on the queue); the others are dropped here, so it stays small
  local live = 0
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[8])) do
    if redis.call('ZSCORE', KEYS[1], id) then live = live + 1 else redis.call('SREM', KEYS[8], id) end
  end
  if live >= client_cap then return {'FULL', 'client', ARGV[7]} end
  redis.call('SADD', KEYS[8], ARGV[2])
  -- kept while an entry of it may live: until its last span ends (a day more), never shortened
  local until_s = e.spans[#e.spans][2] + 86400
  local ttl = redis.call('TTL', KEYS[8])
  if ttl < 0 or now / 1000 + ttl < until_s then redis.call('EXPIREAT', KEYS[8], int(until_s)) end
end
local order = redis.call('HINCRBY', KEYS[3], 'joined', 1)
e.order, e.status, e.version, e.joined_ms = order, 'waiting', 0, now
redis.call('ZADD', KEYS[1], order, ARGV[2])
wl_index(KEYS[6], e, true)
wl_waiting(KEYS[7], e, true)
wl_change({entries = KEYS[2], events = KEYS[4], audit = KEYS[5]}, e, patient, now, 'waitlist_join', ARGV[4],
  ARGV[5], e.practitioner_id ~= cjson.null and e.practitioner_id or nil, nil, nil, {})
return {'OK', int(order)}

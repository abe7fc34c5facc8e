-- hold: hold [start, end) of one practitioner for one visit type, if it is offered right now.
-- KEYS: 1 base zset (practitioner, visit type)  2 claims zset (practitioner)  3 schedule hash (practitioner)
--       4 hold hash  5 hold expiry zset (practice)  6 events stream  7 audit hash  8 idempotency key
--       9 availability versions (practitioner)  10 waitlist queue (while entries wait, expired holds the sweeper
--       has not tidied count as taken: their interval goes to the waitlist first, docs/waitlist.md)
--       11 visit types hash (practice): the visit type's buffers and daily limit are read here, so a change
--       applies at once  12 claim types hash (practitioner: claim id -> '<visit_type_id>|<start_s>', daily limits)
--       13 resources hash (practice)  14 resource claims zset (practice): the visit type's rooms and equipment
-- The hold occupies its practitioner over [start - buffer before, end + buffer after] (its claim member carries that
-- occupation); it is 'taken' when that overlaps another live claim's occupation, and 'daily_limit' when its
-- practitioner already has max_per_day live claims of the visit type starting on that local date; and
-- 'resource_taken' when a resource the visit type needs is closed or claimed over [start, end) (it claims them all).
-- ARGV: 1 now_ms  2 start_s  3 end_s  4 hold_id  5 ttl_ms  6 retention_ms  7 practice_id
--       8 practitioner_id  9 visit_type_id  10 actor  11 request_id  12 idempotency fingerprint or ''
--       13 response json (stored for idempotent replays)  14, 15 bounds of the start's local date (epoch s)
-- A retry of the same call (same hold_id) answers {'OK'} again and changes nothing.
-- Returns {'OK'} | {'REPLAY', response} | {'IDEM_MISMATCH'} | {'UNAVAILABLE', reason}
local now, start, finish = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local replay = idem_lookup(KEYS[8], ARGV[12])
if replay then return replay end
-- hold ids are new for each request: an existing hold hash means this very call already ran (a client retry
-- after a lost answer); answer as the first time did, never 'taken' by its own claim
if redis.call('EXISTS', KEYS[4]) == 1 then return {'OK'} end
local c = {base = KEYS[1], claims = KEYS[2], schedule = KEYS[3], hold = KEYS[4], holdexp = KEYS[5], ver = KEYS[9],
  vtypes = KEYS[11], types = KEYS[12], resources = KEYS[13], rclaims = KEYS[14], vt = ARGV[9], start = start,
  finish = finish, ds = tonumber(ARGV[14]), de = tonumber(ARGV[15])}
local refusal = claim_refusal(c, now, redis.call('ZCARD', KEYS[10]) > 0)
if refusal then return {'UNAVAILABLE', refusal} end
local expires = int(now + tonumber(ARGV[5]))
claim_take(c, ARGV[4], ARGV[7], ARGV[8], expires, tonumber(ARGV[5]), tonumber(ARGV[6]))
emit(KEYS[6], KEYS[7], ARGV[1], 'hold', ARGV[10], ARGV[7], ARGV[8], ARGV[4], nil, ARGV[11],
  {visit_type_id = ARGV[9], start = start, ['end'] = finish, expires_ms = tonumber(expires),
   resource_ids = #c.rids > 0 and c.rids or nil}, nil)
idem_store(KEYS[8], ARGV[12], ARGV[13])
return {'OK'}

-- reschedule: move a booked appointment onto a live hold of the same practice (any practitioner), in one step:
-- the new interval claimed, the old one given back (to the waitlist first), version + 1. On any failure nothing
-- changes. A waitlist offer's hold as the target accepts that offer ('waitlist_accept' after 'reschedule').
-- KEYS: 1 appointment hash  2 claims zset of its current practitioner  3 hold hash  4 claims zset of the hold's
--       practitioner  5 hold expiry zset  6 events  7 audit  8 availability versions of its current practitioner
--       9 claim types hash of its current practitioner  10 claim types hash of the hold's practitioner (daily
--       limits), then the waitlist kit of its current practitioner (wl_kit; its resources hash and resource
--       claims zset: the old rooms and equipment are freed, the hold's become the appointment's, 'resource_taken'
--       when one was closed meanwhile)
-- ARGV: 1 now_ms  2 appointment_id  3 hold_id  4 practitioner the caller read  5 actor  6 request_id
--       7 move id (new for each reschedule request; stored on the appointment as 'move_id')
--       8 whose waitlist offer the caller may move onto ('*' any: staff, admin; '' none: UNAVAILABLE), then the kit
-- A retry of the same call (same move id) answers {'OK', version} again and changes nothing.
-- Returns {'OK', version} | {'NOT_FOUND'} | {'RETRY'} | {'CANCELLED'} | {'HOLD_NOT_FOUND'} | {'USED', appt}
--       | {'EXPIRED', state} | {'UNAVAILABLE', 'taken' | 'waitlist_offer' | 'series' | 'resource_taken'} | {'KIT'}
--       (entries wait and the kit cannot offer)
local now = tonumber(ARGV[1])
local a = redis.call('HMGET', KEYS[1], 'status', 'practitioner_id', 'start', 'end', 'version', 'practice_id',
  'visit_type_id', 'patient', 'manage_hash', 'move_id', 'occ_start', 'occ_end', 'resources')
if not a[1] then return {'NOT_FOUND'} end
-- this very call already moved it (a client retry after a lost answer): answer as the first time did
if ARGV[7] ~= '' and a[10] == ARGV[7] then return {'OK', a[5]} end
if a[2] ~= ARGV[4] then return {'RETRY'} end
if a[1] == 'cancelled' then return {'CANCELLED'} end
local h = redis.call('HMGET', KEYS[3], 'state', 'practitioner_id', 'visit_type_id', 'start', 'end', 'expires_ms',
  'appointment_id', 'entry_id', 'occ_start', 'occ_end', 'resources', 'series_id')
if not h[1] then return {'HOLD_NOT_FOUND'} end
if h[8] and ARGV[8] ~= '*' and ARGV[8] ~= h[8] then return {'UNAVAILABLE', 'waitlist_offer'} end
-- a series' occurrence is booked with its series (series_book.lua), never alone: nor moved onto (as book.lua)
if h[12] then return {'UNAVAILABLE', 'series'} end
if h[1] == 'booked' then return {'USED', h[7]} end
if h[1] ~= 'held' or tonumber(h[6]) <= now then return {'EXPIRED', h[1] == 'held' and 'expired' or h[1]} end
local kit = wl_kit(11, 9)
if kit.on and not kit.ok then return {'KIT'} end
local old_occ_start, old_occ_end = a[11] or a[3], a[12] or a[4]
local occ_start, occ_end = h[9] or h[4], h[10] or h[5]  -- the hold's occupation (its visit type's buffers)
local old_member = 'b|' .. ARGV[2] .. '|' .. old_occ_end .. '|0'
local hold_member = 'h|' .. ARGV[3] .. '|' .. occ_end .. '|' .. h[6]
local start, finish = tonumber(h[4]), tonumber(h[5])
for _, m in ipairs(live_overlaps(KEYS[4], tonumber(occ_start), tonumber(occ_end), now, hold_member)) do
  if m ~= old_member then return {'UNAVAILABLE', 'taken'} end
end
local rids = res_split(h[11])
if res_taken(kit.resources, kit.rclaims, rids, start, finish, now, false, {[ARGV[2]] = true, [ARGV[3]] = true}) then
  return {'UNAVAILABLE', 'resource_taken'}
end
res_free(kit.rclaims, a[13], 'b', ARGV[2], tonumber(a[4]), 0)
redis.call('HDEL', KEYS[1], 'resources')
res_book(kit.rclaims, h[11], ARGV[3], ARGV[2], start, finish, h[6], KEYS[1])
redis.call('ZREM', KEYS[2], old_member)
bump_claim(KEYS[8], tonumber(old_occ_start), tonumber(old_occ_end))
redis.call('ZREM', KEYS[4], hold_member)
redis.call('ZADD', KEYS[4], tonumber(occ_start), 'b|' .. ARGV[2] .. '|' .. occ_end .. '|0')
redis.call('ZREM', KEYS[5], ARGV[3])
redis.call('HDEL', KEYS[9], ARGV[2])
redis.call('HDEL', KEYS[10], ARGV[3])
redis.call('HSET', KEYS[10], ARGV[2], h[3] .. '|' .. h[4])
redis.call('HSET', KEYS[3], 'state', 'booked', 'appointment_id', ARGV[2])
local version = int(tonumber(a[5]) + 1)
redis.call('HSET', KEYS[1], 'practitioner_id', h[2], 'visit_type_id', h[3], 'start', h[4], 'end', h[5],
  'version', version, 'hold_id', ARGV[3], 'updated_ms', ARGV[1], 'move_id', ARGV[7], 'occ_start', occ_start,
  'occ_end', occ_end)
local appt = {id = ARGV[2], status = 'booked', version = tonumber(version), practice_id = a[6],
  practitioner_id = h[2], visit_type_id = h[3], start = start, ['end'] = finish,
  manage_hash = a[9], hold_id = ARGV[3]}
emit(KEYS[6], KEYS[7], ARGV[1], 'reschedule', ARGV[5], a[6], h[2], ARGV[3], ARGV[2], ARGV[6],
  {version = tonumber(version), from_practitioner_id = a[2], from_start = tonumber(a[3]), from_end = tonumber(a[4]),
   start = start, ['end'] = finish, visit_type_id = h[3], resource_ids = #rids > 0 and rids or nil},
  with_patient(appt, a[8]))
if h[8] then wl_accept(kit, h[8], ARGV[3], ARGV[2], now, ARGV[5], ARGV[6]) end
offer_freed(kit, now, ARGV[5], ARGV[6], 'reschedule', freed(kit, tonumber(old_occ_start), tonumber(old_occ_end), a[13]))
return {'OK', version}

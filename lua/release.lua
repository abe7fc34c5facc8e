-- release: give a live hold's interval back at once (to the waitlist first). Releasing a waitlist offer's hold
-- gives the offer up as a decline does (the entry 'waiting' again, 'waitlist_decline').
-- KEYS: 1 hold hash  2 claims zset (the hold's practitioner)  3 hold expiry zset  4 events  5 audit
--       6 availability versions (the hold's practitioner), then the waitlist kit of that practitioner (wl_kit; its
--       resource claims zset: the hold's rooms and equipment are freed at once)
-- ARGV: 1 now_ms  2 hold_id  3 actor  4 request_id  5 whose waitlist offer the caller may release ('*' any: staff,
--       admin; '' none: a waitlist offer's hold answers OFFER), then the kit
-- Returns {'OK'} | {'NOT_FOUND'} | {'USED', appointment_id} | {'GONE', state} | {'KIT'} | {'OFFER'} (nothing changed)
local now = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'state', 'end', 'expires_ms', 'appointment_id', 'practice_id',
  'practitioner_id', 'start', 'entry_id', 'occ_start', 'occ_end', 'resources')
local state = h[1]
if not state then return {'NOT_FOUND'} end
if h[8] and ARGV[5] ~= '*' and ARGV[5] ~= h[8] then return {'OFFER'} end
if state == 'booked' then return {'USED', h[4]} end
if state ~= 'held' then return {'GONE', state} end
if tonumber(h[3]) <= now then return {'GONE', 'expired'} end
local kit = wl_kit(7, 6)
if kit.on and not kit.ok then return {'KIT'} end
redis.call('HSET', KEYS[1], 'state', 'released')
local occ_start, occ_end = tonumber(h[9] or h[7]), tonumber(h[10] or h[2])
redis.call('ZREM', KEYS[2], 'h|' .. ARGV[2] .. '|' .. int(occ_end) .. '|' .. h[3])
redis.call('ZREM', KEYS[3], ARGV[2])
res_free(kit.rclaims, h[11], 'h', ARGV[2], tonumber(h[2]), h[3])
bump_claim(KEYS[6], occ_start, occ_end)
emit(KEYS[4], KEYS[5], ARGV[1], 'release', ARGV[3], h[5], h[6], ARGV[2], nil, ARGV[4], {}, nil)
local fs, fe, exclude = tonumber(h[7]), tonumber(h[2]), nil  -- the visit; freed() is given the occupation
if h[8] then
  local e, patient = wl_get(kit.entries, h[8])
  if e and e.status == 'offered' and not absent(e.offer) and e.offer.hold_id == ARGV[2] then
    e.status, e.offer, exclude = 'waiting', cjson.null, e.id
    wl_waiting(kit.wait, e, true)
    redis.call('HINCRBY', kit.stats, 'declined', 1)
    wl_change(kit, e, patient, now, 'waitlist_decline', ARGV[3], ARGV[4], h[6], ARGV[2], nil,
      {start = fs, ['end'] = fe})
  end
end
offer_freed(kit, now, ARGV[3], ARGV[4], 'release', freed(kit, occ_start, occ_end, h[11]), exclude)
return {'OK'}

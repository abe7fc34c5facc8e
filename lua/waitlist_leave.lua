-- waitlist_leave: the entry leaves the waitlist ('left', off the queue); a live offer is released and its
-- interval offered to the next matching entries. Leaving again, or leaving a booked entry, changes nothing.
-- KEYS: 1 the offer's hold hash (any key of the practice when the caller read no offer), then the waitlist kit
--       (of the offer's practitioner; without one when the caller read no offer)
-- (the kit's head, queue to resource claims, is always there: leaving takes the entry off the index)
-- ARGV: 1 now_ms  2 entry_id  3 hold_id the caller read ('' none)  4 actor  5 request_id, then the kit
-- Returns {'OK', version} | {'ALREADY', status} | {'NOT_FOUND'} | {'RETRY'} (the caller read another offer) | {'KIT'}
local now = tonumber(ARGV[1])
local kit = wl_kit(2, 6)
local e, patient = wl_get(kit.entries, ARGV[2])
if not e then return {'NOT_FOUND'} end
if e.status == 'left' or e.status == 'booked' then return {'ALREADY', e.status} end
local offered = e.status == 'offered' and not absent(e.offer)
if (offered and (e.offer.hold_id ~= ARGV[3] or e.offer.practitioner_id ~= kit.pr)) or
    (not offered and ARGV[3] ~= '') then
  return {'RETRY'}
end
if offered and not kit.ok then return {'KIT'} end
local detail, fs, fe, os_, oe, rooms = {}, nil, nil, nil, nil, nil
if offered then
  fs, fe, os_, oe, rooms = wl_drop_offer(kit, e, KEYS[1], 'released')
  detail = {start = fs, ['end'] = fe}
end
e.status = 'left'
wl_unqueue(kit, e)
redis.call('HINCRBY', kit.stats, 'left', 1)
wl_change(kit, e, patient, now, 'waitlist_leave', ARGV[4], ARGV[5], offered and kit.pr or nil,
  offered and ARGV[3] or nil, nil, detail)
if offered then offer_freed(kit, now, ARGV[4], ARGV[5], 'waitlist_leave', freed(kit, os_, oe, rooms), e.id) end
return {'OK', int(e.version)}

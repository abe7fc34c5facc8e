-- waitlist_decline: the entry gives its live offer up: the hold released, the entry 'waiting' again, and the
-- interval offered to the next matching entries (never to this one again: offer_freed excludes it).
-- KEYS: 1 the offer's hold hash, then the waitlist kit of the offer's practitioner (lua/_prelude.lua, wl_kit)
-- ARGV: 1 now_ms  2 entry_id  3 hold_id the caller read  4 actor  5 request_id, then the kit
-- Returns {'OK', version} | {'NOT_FOUND'} | {'NO_OFFER', status} | {'OFFER_EXPIRED'} (it lapsed: tidied already,
--       or past its expiry and not yet tidied; then nothing changes here and expire.lua records the lapse, once)
--       | {'RETRY'} (the caller read another offer or practitioner) | {'KIT'}
local now = tonumber(ARGV[1])
local kit = wl_kit(2, 6)
local e, patient = wl_get(kit.entries, ARGV[2])
if not e then return {'NOT_FOUND'} end
if e.status ~= 'offered' or absent(e.offer) then
  if e.status == 'waiting' and not absent(e.lapsed_ms) then return {'OFFER_EXPIRED'} end
  return {'NO_OFFER', e.status}
end
if e.offer.hold_id ~= ARGV[3] or e.offer.practitioner_id ~= kit.pr then return {'RETRY'} end
-- an offer past its expiry is gone (as accept reads it): no decline of it, its lapse is the sweeper's to record
if tonumber(e.offer.expires_ms) <= now then return {'OFFER_EXPIRED'} end
if not kit.ok then return {'KIT'} end
local fs, fe, os_, oe, rooms = wl_drop_offer(kit, e, KEYS[1], 'released')
e.status = 'waiting'
wl_waiting(kit.wait, e, true)
redis.call('HINCRBY', kit.stats, 'declined', 1)
wl_change(kit, e, patient, now, 'waitlist_decline', ARGV[4], ARGV[5], kit.pr, ARGV[3], nil,
  {start = fs, ['end'] = fe})
offer_freed(kit, now, ARGV[4], ARGV[5], 'waitlist_decline', freed(kit, os_, oe, rooms), e.id)
return {'OK', int(e.version)}

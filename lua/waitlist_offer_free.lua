-- waitlist_offer_free: offer an interval that became free with no script freeing it to the waiting entries, as a
-- freeing change would (reconciliation after Redis lost its data: the interval of a hold it lost, or of an offer
-- that expired meanwhile; cause 'reconcile'). The starts whose slot lies inside [fs, fe), at most
-- OFFERS_PER_INTERVAL offers; `exclude`: the entry whose offer it was (never offered it again anyway: `had`).
-- KEYS: the waitlist kit of the practitioner (wl_kit)
-- ARGV: 1 now_ms  2 fs (epoch seconds)  3 fe (exclusive)  4 actor  5 entry id left out ('' none), then the kit
-- Returns {'OK', offers made} | {'KIT'} (nothing changed)
local kit = wl_kit(1, 6)
if kit.on and not kit.ok then return {'KIT'} end
local exclude = ARGV[5] ~= '' and ARGV[5] or nil
local made = offer_freed(kit, tonumber(ARGV[1]), ARGV[4], '', 'reconcile',
  freed(kit, tonumber(ARGV[2]), tonumber(ARGV[3])), exclude)
return {'OK', made}

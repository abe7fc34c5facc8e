-- cancel: cancel a booked appointment and give its interval back at once (to the waitlist first). Idempotent.
-- KEYS: 1 appointment hash  2 claims zset of the practitioner the caller read  3 events  4 audit
--       5 availability versions of that practitioner, then the waitlist kit of that practitioner (wl_kit; its
--       resource claims zset: the appointment's rooms and equipment are freed at once)
-- ARGV: 1 now_ms  2 appointment_id  3 practitioner_id the caller read  4 actor  5 request_id  6 reason, then the kit
-- Returns {'OK', version} | {'ALREADY', version} | {'NOT_FOUND'} | {'RETRY'} (practitioner moved meanwhile)
--       | {'KIT'} (entries wait and the kit cannot offer: nothing changed)
local a = redis.call('HMGET', KEYS[1], 'status', 'practitioner_id', 'end', 'version', 'practice_id', 'start',
  'occ_start', 'occ_end', 'resources')
if not a[1] then return {'NOT_FOUND'} end
if a[2] ~= ARGV[3] then return {'RETRY'} end
if a[1] == 'cancelled' then return {'ALREADY', a[4]} end
local kit = wl_kit(6, 7)
if kit.on and not kit.ok then return {'KIT'} end
local version = int(tonumber(a[4]) + 1)
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'version', version, 'cancel_reason', ARGV[6],
  'updated_ms', ARGV[1])
local occ_start, occ_end = tonumber(a[7] or a[6]), tonumber(a[8] or a[3])
redis.call('ZREM', KEYS[2], 'b|' .. ARGV[2] .. '|' .. int(occ_end) .. '|0')
bump_claim(KEYS[5], occ_start, occ_end)
res_free(kit.rclaims, a[9], 'b', ARGV[2], tonumber(a[3]), 0)
emit(KEYS[3], KEYS[4], ARGV[1], 'cancel', ARGV[4], a[5], a[2], nil, ARGV[2], ARGV[5],
  {version = tonumber(version), start = tonumber(a[6]), ['end'] = tonumber(a[3]), has_reason = ARGV[6] ~= '',
   resource_ids = a[9] and a[9] ~= '' and res_split(a[9]) or nil},
  cjson.encode({id = ARGV[2], status = 'cancelled', version = tonumber(version), cancel_reason = ARGV[6]}))
offer_freed(kit, tonumber(ARGV[1]), ARGV[4], ARGV[5], 'cancel', freed(kit, occ_start, occ_end))
return {'OK', version}

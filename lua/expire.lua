-- expire: tidy holds whose time ran out (correctness never waits for this: every reader compares
-- expires_ms with now). Marks them expired, drops their claims and appends one 'expire' event each (a lapsed
-- waitlist offer: 'waitlist_lapse' instead, its entry 'waiting' again); while entries wait, offers each interval
-- to the waitlist first and tidies only holds of the kit's practitioner (others wait for their own call).
-- KEYS: 1 hold expiry zset  2 events  3 audit, then per hold: hold hash, claims zset of its practitioner,
--       then the waitlist kit (wl_kit; its resource claims zset: each hold's rooms and equipment are freed)
-- ARGV: 1 now_ms  2 actor  3 n holds, then the n hold ids in the same order, then the kit
-- Returns the number of holds expired.
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[3])
local kit = wl_kit(4 + 2 * n, 4 + n)
local expired, freeing = 0, {}
for i = 1, n do
  local hold_key, claims_key, id = KEYS[2 + i * 2], KEYS[3 + i * 2], ARGV[3 + i]
  local h = redis.call('HMGET', hold_key, 'state', 'end', 'expires_ms', 'practice_id', 'practitioner_id', 'start',
    'entry_id', 'occ_start', 'occ_end', 'resources')
  local mine = not kit.on or (kit.ok and h[5] == kit.pr)
  if h[1] == 'held' and tonumber(h[3]) <= now and mine then
    redis.call('HSET', hold_key, 'state', 'expired')
    local occ_start, occ_end = tonumber(h[8] or h[6]), tonumber(h[9] or h[2])
    redis.call('ZREM', claims_key, 'h|' .. id .. '|' .. int(occ_end) .. '|' .. h[3])
    redis.call('ZREM', KEYS[1], id)
    res_free(kit.rclaims, h[10], 'h', id, tonumber(h[2]), h[3])
    expired = expired + 1
    local fs, fe, exclude, cause = tonumber(h[6]), tonumber(h[2]), nil, 'expire'
    local e, patient = nil, nil
    if kit.on and h[7] then e, patient = wl_get(kit.entries, h[7]) end
    if e and e.status == 'offered' and not absent(e.offer) and e.offer.hold_id == id then
      -- a lapsed offer: its entry waits again; the offer's whole life is told by waitlist events
      e.status, e.offer, e.lapsed_ms, exclude, cause = 'waiting', cjson.null, now, e.id, 'waitlist_lapse'
      wl_waiting(kit.wait, e, true)
      redis.call('HINCRBY', kit.stats, 'lapsed', 1)
      wl_change(kit, e, patient, now, 'waitlist_lapse', ARGV[2], '', h[5], id, nil,
        {start = fs, ['end'] = fe, expires_ms = tonumber(h[3])})
    else
      emit(KEYS[2], KEYS[3], ARGV[1], 'expire', ARGV[2], h[4], h[5], id, nil, '', {expires_ms = tonumber(h[3])}, nil)
    end
    if kit.on then bump_claim(kit.versions, occ_start, occ_end) end
    freeing[#freeing + 1] = {cause, freed(kit, occ_start, occ_end, h[10]), exclude}
  elseif h[1] ~= 'held' then
    redis.call('ZREM', KEYS[1], id)
  end
end
-- offers only once every lapse of this call is recorded: an entry whose own offer lapses in the same call waits
-- again before the other freed intervals are offered (it may take one it never had)
for _, f in ipairs(freeing) do offer_freed(kit, now, ARGV[2], '', f[1], f[2], f[3]) end
return expired

-- restore_waitlist: put a durable waitlist entry back into Redis (reconciliation; emits no event). Never replaces
-- a copy Redis holds at the same or a newer version. A live entry goes back into the queue with its join order;
-- an offered entry gets its offer back as its hold only when the offer has not expired and no live claim
-- overlaps it (else the entry comes back waiting, its `had` kept); ended, booked and left entries are stored
-- but not queued. The join counter is raised to the entry's order so that later joins queue after it.
-- KEYS: 1 entries hash  2 queue zset  3 stats hash  4 the offer's hold hash  5 claims zset of the offer's
--       practitioner  6 hold expiry zset  7 availability versions of that practitioner
--       (4 to 7 are keys of the practice even when the entry has no offer: then they are not touched)
--       8 waitlist index  9 waiting entries (a live entry is indexed again; an older copy's members removed)
--       10 visit types hash (the offer occupies what a booking would: its visit type's buffers as they are now)
--       11 claim types hash of the offer's practitioner (the offer counts toward its daily limit, as a hold does)
--       12 resources hash  13 resource claims zset (practice): the offer claims the rooms and equipment its visit
--       type needs now, as wl_offer does; one closed or claimed by another claim: 'taken'
-- ARGV: 1 now_ms  2 entry_id  3 version  4 order  5 '1' when the entry is live (waiting or offered, window
--       not passed) else '0'  6 the entry JSON  7 the entry JSON back to waiting ('' when not offered)
--       8 hold_id  9 start_s  10 end_s  11 expires_ms  12 practice_id  13 practitioner_id  14 visit_type_id
--       15 retention_ms  16, 17 bounds of the offer start's local date (epoch s; its daily limit, as hold.lua)
-- Returns {'OK', how}: how is 'offered' (with its hold), 'queued', 'stored' (not live), 'expired' or 'taken'
-- (the offer could not come back, overlapped or its daily limit reached: the entry is queued waiting)
-- | {'SKIP', version Redis has}
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if cur then
  local old = wl_split(cur)
  local have = tonumber(old.version)
  if have >= tonumber(ARGV[3]) then return {'SKIP', int(have)} end
  wl_index(KEYS[8], old, false)
  wl_waiting(KEYS[9], old, false)
end
local now, order = tonumber(ARGV[1]), tonumber(ARGV[4])
local joined = tonumber(redis.call('HGET', KEYS[3], 'joined') or '0')
if joined < order then redis.call('HSET', KEYS[3], 'joined', int(order)) end
if ARGV[5] ~= '1' then
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[6])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return {'OK', 'stored'}
end
local how = 'queued'
local record = ARGV[6]
if ARGV[7] ~= '' then
  local start, finish, expires = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
  local hold = redis.call('HMGET', KEYS[4], 'state', 'entry_id', 'occ_start', 'occ_end')
  local before, after, most = vt_rules(KEYS[10], ARGV[14])
  local rids = res_ids(KEYS[10], ARGV[14])
  local occ_start, occ_end = tonumber(hold[3] or (start - before)), tonumber(hold[4] or (finish + after))
  local member = 'h|' .. ARGV[8] .. '|' .. int(occ_end) .. '|' .. ARGV[11]
  if expires <= now then
    how = 'expired'
  elseif hold[1] and not (hold[1] == 'held' and hold[2] == ARGV[2]) then
    how = 'taken'  -- Redis knows this hold otherwise (booked, released, another entry's)
  elseif #live_overlaps(KEYS[5], occ_start, occ_end, now, member) > 0 then
    how = 'taken'
  elseif most and not redis.call('ZSCORE', KEYS[5], member)
      and day_count(KEYS[5], KEYS[11], ARGV[14], tonumber(ARGV[16]), tonumber(ARGV[17]), now, false) >= most then
    how = 'taken'
  elseif res_taken(KEYS[12], KEYS[13], rids, start, finish, now, false, {[ARGV[8]] = true}) then
    how = 'taken'
  else
    how = 'offered'
    if not hold[1] then
      redis.call('HSET', KEYS[4], 'state', 'held', 'practice_id', ARGV[12], 'practitioner_id', ARGV[13],
        'visit_type_id', ARGV[14], 'start', ARGV[9], 'end', ARGV[10], 'expires_ms', ARGV[11], 'entry_id', ARGV[2],
        'occ_start', int(occ_start), 'occ_end', int(occ_end))
      redis.call('PEXPIRE', KEYS[4], expires - now + tonumber(ARGV[15]))
    end
    redis.call('ZADD', KEYS[5], occ_start, member)
    redis.call('HSET', KEYS[11], ARGV[8], ARGV[14] .. '|' .. ARGV[9])
    redis.call('ZADD', KEYS[6], expires, ARGV[8])
    res_claim(KEYS[13], KEYS[4], rids, 'h', ARGV[8], start, finish, expires)
    bump_claim(KEYS[7], occ_start, occ_end)
  end
  if how ~= 'offered' then record = ARGV[7] end
end
redis.call('HSET', KEYS[1], ARGV[2], record)
redis.call('ZADD', KEYS[2], order, ARGV[2])
local e = wl_split(record)
wl_index(KEYS[8], e, true)
if how ~= 'offered' then wl_waiting(KEYS[9], e, true) end
return {'OK', how}

-- Shared helpers, prepended to every script when it is registered (engine/scripts/registry.py).
-- Claims are members of a practitioner's claims zset, scored by the start of their occupation (epoch seconds):
--   'b|<appointment_id>|<occ_end_s>|0'          a booked appointment
--   'h|<hold_id>|<occ_end_s>|<expires_ms>'      a hold, live while now_ms < expires_ms
-- A claim occupies its practitioner over [start - buffer before, end + buffer after] (its visit type's buffers when
-- it was claimed): its hold or appointment hash keeps 'occ_start' and 'occ_end' (absent on records written before
-- buffers existed: the visit itself).
local unpack = unpack  -- Lua 5.1, as on every Redis and Valkey the engine runs on (a local: quicker than the global)
-- MAX_DURATION_S (the longest visit type, engine/limits.py) and MAX_OCCUPATION_S (the longest visit with both
-- buffers at their longest) bound every overlap look-up; engine/scripts/registry.py defines them above this prelude.

local function int(x) return string.format('%d', x) end

-- Append one event to the practice's stream. Audited actions take the next audit sequence number.
local function emit(stream, audit, now_ms, typ, actor, practice, practitioner, hold, appt, request_id, detail, data)
  local seq = '0'
  if audit then seq = int(redis.call('HINCRBY', audit, 'seq', 1)) end
  redis.call('XADD', stream, '*', 'v', '1', 'type', typ, 'seq', seq, 'at', now_ms, 'actor', actor,
    'practice_id', practice, 'practitioner_id', practitioner or '', 'hold_id', hold or '',
    'appointment_id', appt or '', 'request_id', request_id, 'detail', cjson.encode(detail), 'data', data or '')
  return seq
end

-- Live claims overlapping [start, finish), skipping `ignore` (a member string) and expired holds; with `strict`
-- (a waitlist waits: docs/waitlist.md) an expired hold still in the zset counts too, until expire.lua tidies it.
local function live_overlaps(claims_key, start, finish, now_ms, ignore, strict)
  local found = {}
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', claims_key, start - MAX_OCCUPATION_S, '(' .. int(finish))) do
    local kind, _, cend, exp = string.match(m, '^(%a)|([^|]+)|(%d+)|(%d+)$')
    local live = kind == 'b' or strict or tonumber(exp) > now_ms
    if m ~= ignore and live and tonumber(cend) > start then found[#found + 1] = m end
  end
  return found
end

-- A visit type's buffers (seconds) and daily limit (nil: none), read from the practice's visit types hash in the
-- script that claims, so a change (PATCH) applies to the next claim at once.
local function vt_rules(vt_key, vt_id)
  local raw = redis.call('HGET', vt_key, vt_id)
  if not raw then return 0, 0, nil end
  local v = cjson.decode(raw)
  local before, after, most = v.buffer_before_minutes, v.buffer_after_minutes, v.max_per_day
  if type(before) ~= 'number' then before = 0 end
  if type(after) ~= 'number' then after = 0 end
  if type(most) ~= 'number' then most = nil end
  return before * 60, after * 60, most
end

-- The end of a claim's occupation, from its hold or appointment hash fields (end, occ_end)
local function occ_end_of(visit_end, occ_end)
  return occ_end or visit_end
end

-- Daily limits: how many live claims of visit type `vt` start in [ds, de) (one local date of the practice), from
-- the claims zset (liveness, as live_overlaps: `strict` counts untidied expired holds too) and the practitioner's
-- claim types hash (claim id -> '<visit_type_id>|<start_s>'). A member's score is its occupation's start, at most
-- MAX_BUFFER_S before the visit's.
-- Also returns the instant the count may first drop by time alone (0: never): the earliest expiry of a counted
-- live hold, or now + 1 when an expired hold counts (whether it does depends on the waitlist).
local function day_count(claims_key, types_key, vt, ds, de, now_ms, strict)
  local ids, exps = {}, {}
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', claims_key, ds - MAX_BUFFER_S, '(' .. int(de))) do
    local kind, id, _, exp = string.match(m, '^(%a)|([^|]+)|(%d+)|(%d+)$')
    if kind == 'b' or strict or tonumber(exp) > now_ms then
      ids[#ids + 1] = id
      exps[#exps + 1] = kind == 'h' and math.max(tonumber(exp), now_ms + 1) or 0
    end
  end
  if #ids == 0 then return 0, 0 end
  local n, frees = 0, 0
  for i, v in ipairs(redis.call('HMGET', types_key, unpack(ids))) do
    if v then
      local t, s = string.match(v, '^(.*)|(%d+)$')
      if t == vt and tonumber(s) >= ds and tonumber(s) < de then
        n = n + 1
        if exps[i] > 0 and (frees == 0 or exps[i] < frees) then frees = exps[i] end
      end
    end
  end
  return n, frees
end

-- An appointment record with the patient's JSON spliced in as it was encoded by the engine (never decoded and
-- re-encoded here: cjson would escape '/', round numbers and drop null fields).
local function with_patient(record, patient_json)
  return string.sub(cjson.encode(record), 1, -2) .. ',"patient":' .. patient_json .. '}'
end

-- Availability versions (T:ver:<practitioner> hash): one counter per UTC day bucket (floor(t / 86400)) and 'all'.
-- Every change of what a practitioner offers bumps the buckets its interval touches, in the script that makes
-- it, so a cached search answer keyed by the versions it was computed at is exact (engine/search_cache.py).
local DAY_S = 86400
local function bump(ver_key, start, finish)
  local b, last = math.floor(start / DAY_S), math.floor((finish - 1) / DAY_S)
  while b <= last do
    redis.call('HINCRBY', ver_key, int(b), 1)
    b = b + 1
  end
end

-- A claim's occupation [occ_start, occ_end) changed: bump the buckets it touches widened by the longest buffer, so
-- a cached day whose visit type reaches up to MAX_BUFFER_S beyond the day (its buffers) is renewed whatever buffers
-- that visit type has (engine/search_cache.py keys a day by the buckets of [day start, day end + duration)).
local function bump_claim(ver_key, occ_start, occ_end)
  bump(ver_key, occ_start - MAX_BUFFER_S, occ_end + MAX_BUFFER_S)
end

-- An idempotency record is '<fingerprint>\n<response>'. Returns nil when absent.
local function idem_lookup(key, fp)
  if fp == '' then return nil end
  local prior = redis.call('GET', key)
  if not prior then return nil end
  local sep = string.find(prior, '\n', 1, true)
  if string.sub(prior, 1, sep - 1) ~= fp then return {'IDEM_MISMATCH'} end
  return {'REPLAY', string.sub(prior, sep + 1)}
end

local function idem_store(key, fp, response)
  if fp ~= '' then redis.call('SET', key, fp .. '\n' .. response, 'PX', 86400000) end
end

-- ---------------------------------------------------------------- rooms and equipment (docs/redis-model.md)
-- A visit type may need resources (its 'resource_ids'); a claim occupies each over the visit itself [start, end).
-- All claims of all resources of a practice are members of one zset (keys.resource_claims), scored by the visit's
-- start: '<resource_id>|h|<hold_id>|<end_s>|<expires_ms>' (live while now_ms < expires_ms) or
-- '<resource_id>|b|<appointment_id>|<end_s>|0'. A resource's closures are the 'spans' ([start_s, end_s]) of its
-- record in the resources hash. The hold or appointment hash keeps the ids it claimed in 'resources' ('a,b').

-- The resource ids a visit type needs ({} when none), read in the claiming script (a PATCH applies at once).
local function res_ids(vt_key, vt_id)
  local raw = redis.call('HGET', vt_key, vt_id)
  if not raw then return {} end
  local ids = cjson.decode(raw).resource_ids
  if type(ids) ~= 'table' then return {} end
  return ids
end

local function res_split(csv)
  local out = {}
  for rid in string.gmatch(csv or '', '[^,]+') do out[#out + 1] = rid end
  return out
end

-- Is any of `ids` closed or claimed by a live claim over [start, finish)? Claims whose id is in `ignore` (a set)
-- do not count; `strict` counts untidied expired holds too (as live_overlaps). An unknown resource is taken.
local function res_taken(res_key, rc_key, ids, start, finish, now_ms, strict, ignore)
  if #ids == 0 then return false end
  local need = {}
  for _, raw in ipairs(redis.call('HMGET', res_key, unpack(ids))) do
    if not raw then return true end
    for _, sp in ipairs(cjson.decode(raw).spans or {}) do
      if sp[1] < finish and sp[2] > start then return true end
    end
  end
  for _, rid in ipairs(ids) do need[rid] = true end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', rc_key, start - MAX_DURATION_S, '(' .. int(finish))) do
    local rid, kind, id, cend, exp = string.match(m, '^([^|]+)|(%a)|([^|]+)|(%d+)|(%d+)$')
    local live = kind == 'b' or strict or tonumber(exp) > now_ms
    if need[rid] and live and not (ignore and ignore[id]) and tonumber(cend) > start then return true end
  end
  return false
end

-- Claim `ids` for the claim `id` (kind 'h' with its expiry, or 'b'), and note them on its hash.
local function res_claim(rc_key, rec_key, ids, kind, id, start, finish, exp)
  if #ids == 0 then return end
  local args = {}
  for _, rid in ipairs(ids) do
    args[#args + 1] = start
    args[#args + 1] = rid .. '|' .. kind .. '|' .. id .. '|' .. int(finish) .. '|' .. int(exp)
  end
  redis.call('ZADD', rc_key, unpack(args))
  redis.call('HSET', rec_key, 'resources', table.concat(ids, ','))
end

-- Give back the resources ('a,b', from the claim's hash) of the claim `id` at once.
local function res_free(rc_key, csv, kind, id, finish, exp)
  local ids = res_split(csv)
  if #ids == 0 then return end
  local members = {}
  for _, rid in ipairs(ids) do members[#members + 1] = rid .. '|' .. kind .. '|' .. id .. '|' .. int(finish) .. '|' .. int(exp) end
  redis.call('ZREM', rc_key, unpack(members))
end

-- A hold's resource claims become the appointment's (book, reschedule).
local function res_book(rc_key, csv, hold_id, appt_id, start, finish, exp, appt_key)
  if not csv or csv == '' then return end
  res_free(rc_key, csv, 'h', hold_id, finish, exp)
  res_claim(rc_key, appt_key, res_split(csv), 'b', appt_id, start, finish, 0)
end

-- A closure changed: renew every day its span touches (widened as bump_claim does).
local function res_bump_spans(ver_key, spans)
  for _, sp in ipairs(spans or {}) do bump_claim(ver_key, sp[1], sp[2]) end
end

-- Search: the busy intervals of `ids` near [lo, hi) (live claims, closures; untidied expired holds too when
-- `strict`), sorted and merged, and the instant one may free by time alone (0: none; now + 1: an untidied
-- expired hold counts, which depends on the waitlist).
local function res_busy(res_key, rc_key, ids, lo, hi, now_ms, strict)
  local iv, valid = {}, 0
  if #ids == 0 then return {}, {}, 0 end
  local need = {}
  for _, raw in ipairs(redis.call('HMGET', res_key, unpack(ids))) do
    if not raw then iv[#iv + 1] = {lo, hi} else
      for _, sp in ipairs(cjson.decode(raw).spans or {}) do
        if sp[1] < hi and sp[2] > lo then iv[#iv + 1] = {sp[1], sp[2]} end
      end
    end
  end
  for _, rid in ipairs(ids) do need[rid] = true end
  local near = redis.call('ZRANGEBYSCORE', rc_key, lo - MAX_DURATION_S, '(' .. int(hi), 'WITHSCORES')
  for k = 1, #near, 2 do
    local rid, kind, _, cend, exp = string.match(near[k], '^([^|]+)|(%a)|([^|]+)|(%d+)|(%d+)$')
    local live = kind == 'b' or tonumber(exp) > now_ms
    if need[rid] and (live or strict) then
      iv[#iv + 1] = {tonumber(near[k + 1]), tonumber(cend)}
      if kind == 'h' and live and (valid == 0 or tonumber(exp) < valid) then valid = tonumber(exp) end
    end
    if need[rid] and not live then valid = now_ms + 1 end
  end
  table.sort(iv, function(a, b) return a[1] < b[1] end)
  local cs, ce = {}, {}
  for _, x in ipairs(iv) do
    if #ce > 0 and x[1] < ce[#ce] then ce[#ce] = math.max(ce[#ce], x[2]) else cs[#cs + 1], ce[#ce + 1] = x[1], x[2] end
  end
  return cs, ce, valid
end

-- Keep the starts t (sorted) whose [t, t + dur) overlaps none of the merged busy intervals cs/ce.
local function res_keep(starts, dur, cs, ce)
  if #cs == 0 then return starts end
  local kept, j = {}, 1
  for _, t in ipairs(starts) do
    while j <= #ce and ce[j] <= t do j = j + 1 end
    if not (j <= #ce and cs[j] < t + dur) then kept[#kept + 1] = t end
  end
  return kept
end

-- Restore (reconciliation): the claims of `ids` overlapping [start, finish) other than the appointment `own`'s;
-- holds among them lose their resource claims (the acknowledged booking wins), bookings are returned (a clash).
local function res_restore_clear(rc_key, ids, start, finish, own)
  local need, clash = {}, {}
  for _, rid in ipairs(ids) do need[rid] = true end
  if #ids == 0 then return clash end
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', rc_key, start - MAX_DURATION_S, '(' .. int(finish))) do
    local rid, kind, id, cend = string.match(m, '^([^|]+)|(%a)|([^|]+)|(%d+)|')
    if need[rid] and id ~= own and tonumber(cend) > start then
      if kind == 'h' then redis.call('ZREM', rc_key, m) else clash[#clash + 1] = m end
    end
  end
  return clash
end

-- ---------------------------------------------------------------- claims (hold.lua, series_hold.lua)
-- One claim asked for, checked by claim_refusal and taken by claim_take: every claim script calls both, so a check
-- added here applies to single holds and series alike. c: base (zset of the slot starts), claims, schedule,
-- vtypes (visit types hash), types (claim types hash), resources (resources hash), rclaims (resource claims zset),
-- vt (visit type id), start, finish (epoch s), ds, de (the bounds of the start's local date); claim_refusal sets
-- c.occ_start and c.occ_end (the occupation with buffers) and c.rids (the resources the visit type needs now:
-- each must be open and unclaimed over [start, finish), else 'resource_taken').
local function claim_refusal(c, now, strict)
  if not redis.call('ZSCORE', c.base, int(c.start)) then return 'not_a_slot' end
  local notice, horizon = unpack(redis.call('HMGET', c.schedule, 'min_notice_s', 'horizon_s'))
  if c.start * 1000 < now + tonumber(notice or 0) * 1000 then return 'too_soon' end
  if horizon and c.start * 1000 > now + tonumber(horizon) * 1000 then return 'beyond_horizon' end
  local before, after, most = vt_rules(c.vtypes, c.vt)
  c.occ_start, c.occ_end = c.start - before, c.finish + after
  if #live_overlaps(c.claims, c.occ_start, c.occ_end, now, nil, strict) > 0 then return 'taken' end
  if most and day_count(c.claims, c.types, c.vt, c.ds, c.de, now, strict) + (c.same_day or 0) >= most then
    return 'daily_limit'
  end
  c.rids = res_ids(c.vtypes, c.vt)
  if res_taken(c.resources, c.rclaims, c.rids, c.start, c.finish, now, strict) then return 'resource_taken' end
  return nil
end

-- Take a claim claim_refusal let through: the hold hash (c.hold; c.extra: more fields, a flat list), its member
-- in the claims zset, the hold expiry zset (c.holdexp), the claim types hash, the availability versions (c.ver),
-- and every resource of c.rids (members in c.rclaims, 'resources' on the hold hash).
local function claim_take(c, id, practice, practitioner, expires, ttl_ms, retention_ms)
  redis.call('HSET', c.hold, 'state', 'held', 'practice_id', practice, 'practitioner_id', practitioner,
    'visit_type_id', c.vt, 'start', int(c.start), 'end', int(c.finish), 'expires_ms', expires,
    'occ_start', int(c.occ_start), 'occ_end', int(c.occ_end), unpack(c.extra or {}))
  redis.call('PEXPIRE', c.hold, ttl_ms + retention_ms)
  redis.call('ZADD', c.claims, c.occ_start, 'h|' .. id .. '|' .. int(c.occ_end) .. '|' .. expires)
  redis.call('ZADD', c.holdexp, expires, id)
  redis.call('HSET', c.types, id, c.vt .. '|' .. int(c.start))
  res_claim(c.rclaims, c.hold, c.rids, 'h', id, c.start, c.finish, expires)
  bump_claim(c.ver, c.occ_start, c.occ_end)
end

-- ---------------------------------------------------------------- bookings (book.lua, series_book.lua)
-- A hold as book_refusal and book_take read it: HMGET of these fields, in this order.
local BOOK_FIELDS = {'state', 'practice_id', 'practitioner_id', 'visit_type_id', 'start', 'end', 'expires_ms',
  'appointment_id', 'entry_id', 'occ_start', 'occ_end', 'series_id', 'resources'}

-- Why the hold h (BOOK_FIELDS) of `hold_id` cannot be booked now (a reply), or nil: used, expired, its
-- occupation overlapping another live claim in k.claims, or one of its resources ('resources', claimed with the
-- hold) closed meanwhile or claimed by another claim (k.resources, k.rclaims): 'resource_taken'.
local function book_refusal(k, h, hold_id, now)
  if h[1] == 'booked' then return {'USED', h[8]} end
  if h[1] ~= 'held' or tonumber(h[7]) <= now then return {'EXPIRED', h[1] == 'held' and 'expired' or h[1]} end
  local occ_end = h[11] or h[6]
  local hold_member = 'h|' .. hold_id .. '|' .. occ_end .. '|' .. h[7]
  if #live_overlaps(k.claims, tonumber(h[10] or h[5]), tonumber(occ_end), now, hold_member) > 0 then
    return {'OVERLAP'}
  end
  if res_taken(k.resources, k.rclaims, res_split(h[13]), tonumber(h[5]), tonumber(h[6]), now, false,
      {[hold_id] = true}) then
    return {'UNAVAILABLE', 'resource_taken'}
  end
  return nil
end

-- Book the hold h (BOOK_FIELDS) book_refusal let through: its claim becomes the appointment's (which keeps the
-- hold's occupation: its buffers when it was held), the appointment hash is written and 'book' appended.
-- k: claims, holdexp, types (claim types hash), hold (its hash), appt (the appointment hash), events, audit,
-- rclaims (the hold's resource claims become the appointment's; the detail names them as resource_ids).
-- b: hold_id, appt_id, patient (json), manage_hash, now (the ARGV string), actor, request_id, patient_id, and for a
-- series' occurrence series (more detail: series_index, every_days, count).
local function book_take(k, h, b)
  local occ_start, occ_end = h[10] or h[5], h[11] or h[6]
  local start, finish = tonumber(h[5]), tonumber(h[6])
  redis.call('ZREM', k.claims, 'h|' .. b.hold_id .. '|' .. occ_end .. '|' .. h[7])
  redis.call('ZADD', k.claims, tonumber(occ_start), 'b|' .. b.appt_id .. '|' .. occ_end .. '|0')
  redis.call('ZREM', k.holdexp, b.hold_id)
  redis.call('HDEL', k.types, b.hold_id)
  redis.call('HSET', k.types, b.appt_id, h[4] .. '|' .. h[5])
  redis.call('HSET', k.hold, 'state', 'booked', 'appointment_id', b.appt_id)
  redis.call('HSET', k.appt, 'status', 'booked', 'version', '1', 'practice_id', h[2], 'practitioner_id', h[3],
    'visit_type_id', h[4], 'start', h[5], 'end', h[6], 'patient', b.patient, 'manage_hash', b.manage_hash,
    'hold_id', b.hold_id, 'created_ms', b.now, 'updated_ms', b.now, 'occ_start', occ_start, 'occ_end', occ_end)
  local appt = {id = b.appt_id, status = 'booked', version = 1, practice_id = h[2], practitioner_id = h[3],
    visit_type_id = h[4], start = start, ['end'] = finish, manage_hash = b.manage_hash, hold_id = b.hold_id}
  res_book(k.rclaims, h[13], b.hold_id, b.appt_id, start, finish, h[7], k.appt)
  local rids = res_split(h[13])
  local detail = {visit_type_id = h[4], start = start, ['end'] = finish, patient_id = b.patient_id, version = 1,
    resource_ids = #rids > 0 and rids or nil}
  if h[12] then  -- a series' occurrence: b.series (its place, every_days, count) goes into the detail too
    redis.call('HSET', k.appt, 'series_id', h[12])
    appt.series_id, detail.series_id = h[12], h[12]
    for name, v in pairs(b.series or {}) do detail[name] = v end
  end
  emit(k.events, k.audit, b.now, 'book', b.actor, h[2], h[3], b.hold_id, b.appt_id, b.request_id, detail,
    with_patient(appt, b.patient))
end

-- ---------------------------------------------------------------- the waitlist (docs/waitlist.md)
local function absent(v) return v == nil or v == cjson.null end

-- The index (docs/waitlist.md): every live entry has one member in T:wl:ix per UTC day its spans touch,
-- '<visit type>|<day>|<practitioner or *>|<order, 12 digits>|<entry id>', so the offer walk of a freed interval
-- reads only the entries of its visit types, days and practitioner (oldest first within each prefix); every
-- waiting entry one member '<visit type>|<order>|<entry id>' in T:wl:waiting (position: a ZLEXCOUNT).
-- engine/scripts/waitlist.py::index_members writes the same members (the sweeper's drop of ended entries).
local function wl_pad(n) return string.format('%012d', n) end

local function wl_days(e)
  local out, last = {}, nil
  for _, sp in ipairs(e.spans) do
    local b, l = math.floor(sp[1] / DAY_S), math.floor((sp[2] - 1) / DAY_S)
    if last and b <= last then b = last + 1 end
    while b <= l do
      out[#out + 1] = b
      b = b + 1
    end
    if not last or l > last then last = l end
  end
  return out
end

local function wl_index(ix, e, on)
  local who = absent(e.practitioner_id) and '*' or e.practitioner_id
  local tail = '|' .. who .. '|' .. wl_pad(e.order) .. '|' .. e.id
  local args = {}
  for _, day in ipairs(wl_days(e)) do
    if on then args[#args + 1] = '0' end
    args[#args + 1] = e.visit_type_id .. '|' .. int(day) .. tail
  end
  if #args == 0 then return end
  if on then redis.call('ZADD', ix, unpack(args)) else redis.call('ZREM', ix, unpack(args)) end
end

local function wl_waiting(wait, e, on)
  local m = e.visit_type_id .. '|' .. wl_pad(e.order) .. '|' .. e.id
  if on then redis.call('ZADD', wait, 0, m) else redis.call('ZREM', wait, m) end
end

-- An entry no longer live (booked, left, ended): off the queue, the index and the waiting set.
local function wl_unqueue(k, e)
  redis.call('ZREM', k.queue, e.id)
  wl_index(k.ix, e, false)
  wl_waiting(k.wait, e, false)
end

-- A kit's practitioner's minimum notice and horizon (its schedule hash), which an offer respects.
-- (false, never nil, when it has none: another practitioner's part would read the kit's through __index)
local function wl_limits(kit)
  local notice, horizon = unpack(redis.call('HMGET', kit.schedule, 'min_notice_s', 'horizon_s'))
  kit.notice_ms, kit.horizon_ms = tonumber(notice or 0) * 1000, horizon and tonumber(horizon) * 1000 or false
end

-- A freeing script's waitlist kit, from KEYS[ki] and ARGV[ai] on (engine/scripts/waitlist.py, OfferKit):
-- KEYS: queue, entries, stats, visit types hash, events, audit, index, waiting, resources hash, resource claims
--       zset (the practice's rooms and equipment: kit.resources, kit.rclaims, always there, so every freeing
--       script frees a claim's resources through them), and with a practitioner: its
--       schedule, claims,
--       versions, the hold expiry zset, one base zset per visit type, one hold hash per fresh hold id, and
--       its claim types hash (daily limits), then for each other practitioner of the practice: its schedule,
--       claims, versions, one base zset per visit type, one hold hash per hold id of its own, its claim types
-- ARGV: practice_id, practitioner_id ('' = none), offer_ms, retention_ms, n visit types, (id, duration_s) each,
--       n hold ids, the ids, n zone offsets, (since_s, offset_s) each (engine/timeutil.py offset_table: an offer's
--       daily limit counts by the local date of its start), n other practitioners, then each: its id, n hold ids,
--       the ids
-- kit.on: entries wait (the only command run when none do); kit.ok: it can make offers (false: a kit that names
-- no practitioner, or not every visit type of the practice: the script answers 'KIT' before changing anything)
local function wl_kit(ki, ai)
  local kit = {queue = KEYS[ki], entries = KEYS[ki + 1], stats = KEYS[ki + 2], vtypes = KEYS[ki + 3],
    events = KEYS[ki + 4], audit = KEYS[ki + 5], ix = KEYS[ki + 6], wait = KEYS[ki + 7], practice = ARGV[ai],
    resources = KEYS[ki + 8], rclaims = KEYS[ki + 9], pr = ARGV[ai + 1], ids = {}, keys = {}, used = 0}
  kit.on = redis.call('ZCARD', kit.queue) > 0
  if not kit.on then return kit end
  if kit.pr == '' then kit.ok = false; return kit end
  ki = ki + 4
  kit.schedule, kit.claims, kit.versions, kit.holdexp = KEYS[ki + 6], KEYS[ki + 7], KEYS[ki + 8], KEYS[ki + 9]
  kit.offer_ms, kit.retention_ms = tonumber(ARGV[ai + 2]), tonumber(ARGV[ai + 3])
  local nvt = tonumber(ARGV[ai + 4])
  kit.base, kit.dur = {}, {}
  for i = 1, nvt do
    local vt = ARGV[ai + 3 + 2 * i]
    kit.base[vt], kit.dur[vt] = KEYS[ki + 9 + i], tonumber(ARGV[ai + 4 + 2 * i])
  end
  local nids = tonumber(ARGV[ai + 5 + 2 * nvt])
  for i = 1, nids do
    kit.ids[i], kit.keys[i] = ARGV[ai + 5 + 2 * nvt + i], KEYS[ki + 9 + nvt + i]
  end
  kit.ctypes = KEYS[ki + 10 + nvt + nids]
  local zi = ai + 6 + 2 * nvt + nids
  kit.zat, kit.zoff = {}, {}
  for i = 1, tonumber(ARGV[zi] or 0) do
    kit.zat[i], kit.zoff[i] = tonumber(ARGV[zi + 2 * i - 1]), tonumber(ARGV[zi + 2 * i])
  end
  kit.ok = redis.call('HLEN', kit.vtypes) == nvt
  wl_limits(kit)
  -- the practice's other practitioners: a room or piece of equipment this change frees may free their starts too
  -- (offer_freed). Each shares the kit's practice keys and has its own practitioner keys and hold ids.
  local oi, ok = zi + 1 + 2 * tonumber(ARGV[zi] or 0), ki + 11 + nvt + nids
  kit.others = {}
  for _ = 1, tonumber(ARGV[oi] or 0) do
    local n = tonumber(ARGV[oi + 2])
    local o = setmetatable({pr = ARGV[oi + 1], schedule = KEYS[ok], claims = KEYS[ok + 1], versions = KEYS[ok + 2],
      base = {}, ids = {}, keys = {}, used = 0, others = false, ctypes = KEYS[ok + 3 + nvt + n]}, {__index = kit})
    for i = 1, nvt do o.base[ARGV[ai + 3 + 2 * i]] = KEYS[ok + 2 + i] end
    for i = 1, n do o.ids[i], o.keys[i] = ARGV[oi + 2 + i], KEYS[ok + 2 + nvt + i] end
    kit.others[#kit.others + 1] = o  -- its notice and horizon are read when a room it may need is freed
    oi, ok = oi + 2 + n, ok + 4 + nvt + n
  end
  return kit
end

-- The number of ARGV a waitlist kit takes from ARGV[ai] on (a script that passes several kits steps over them).
local function wl_kit_argc(ai)
  local nvt = tonumber(ARGV[ai + 4])
  local nids = tonumber(ARGV[ai + 5 + 2 * nvt])
  local zi = ai + 6 + 2 * nvt + nids
  local oi = zi + 1 + 2 * tonumber(ARGV[zi] or 0)
  local e = oi + 1
  for _ = 1, tonumber(ARGV[oi] or 0) do e = e + 2 + tonumber(ARGV[e + 1]) end
  return e - ai
end

-- An entry's JSON is the engine's encoding with "patient" last: the patient's JSON is kept as the engine wrote it
-- (never decoded here), the rest decoded into a table and encoded again by wl_put.
local function wl_split(raw)
  local at = string.find(raw, ',"patient":', 1, true)
  return cjson.decode(string.sub(raw, 1, at - 1) .. '}'), string.sub(raw, at + 11, -2)
end

local function wl_get(entries, id)
  local raw = redis.call('HGET', entries, id)
  if not raw then return nil end
  return wl_split(raw)
end

local function wl_put(entries, e, patient)
  -- Redis's cjson cannot tell an empty list from an empty object (both an empty table): `had` is a list
  local json = string.gsub(cjson.encode(e), '"had":{}', '"had":[]')
  json = string.sub(json, 1, -2) .. ',"patient":' .. patient .. '}'
  redis.call('HSET', entries, e.id, json)
  return json
end

-- One change of an entry: version + 1, stored, its event appended (audited) with the entry as its data.
local function wl_change(k, e, patient, now, typ, actor, request_id, pr, hold, appt, detail)
  e.version, e.updated_ms = e.version + 1, now
  local json = wl_put(k.entries, e, patient)
  detail.entry_id, detail.visit_type_id = e.id, e.visit_type_id
  emit(k.events, k.audit, int(now), typ, actor, e.practice_id, pr, hold, appt, request_id, detail, json)
end

-- The entry of an offer hold that was booked (book.lua, reschedule.lua): booked, off the queue, 'waitlist_accept'.
local function wl_accept(k, entry_id, hold_id, appt_id, now, actor, request_id)
  local e, patient = wl_get(k.entries, entry_id)
  if not e or e.status ~= 'offered' or absent(e.offer) or e.offer.hold_id ~= hold_id then return end
  local o = e.offer
  e.status, e.offer, e.appointment_id = 'booked', cjson.null, appt_id
  wl_unqueue(k, e)
  redis.call('HINCRBY', k.stats, 'accepted', 1)
  wl_change(k, e, patient, now, 'waitlist_accept', actor, request_id, o.practitioner_id, hold_id, appt_id,
    {start = o.start, ['end'] = o['end'], appointment_id = appt_id})
end

-- An entry's live offer given up (decline, lapse, leave, its hold released): the entry's offer is cleared and
-- its hold, if still held, released (its resources too). Returns the offered interval and its occupation
-- (buffers included: what the waitlist is offered next).
local function wl_drop_offer(k, e, hold_key, state)
  local o = e.offer
  e.offer = cjson.null
  local hs, os_, oe, rs = unpack(redis.call('HMGET', hold_key, 'state', 'occ_start', 'occ_end', 'resources'))
  if hs == 'held' then
    redis.call('HSET', hold_key, 'state', state)
    redis.call('ZREM', k.claims, 'h|' .. o.hold_id .. '|' .. occ_end_of(int(o['end']), oe) .. '|' .. int(o.expires_ms))
    redis.call('ZREM', k.holdexp, o.hold_id)
    res_free(k.rclaims, rs, 'h', o.hold_id, o['end'], o.expires_ms)
    bump_claim(k.versions, tonumber(os_ or o.start), tonumber(oe or o['end']))
  end
  return o.start, o['end'], tonumber(os_ or o.start), tonumber(oe or o['end']), hs == 'held' and rs or nil
end

-- The instant local wall time `w` (seconds since the epoch as if the zone were UTC) is first shown, by the kit's
-- zone offsets, resolved as engine/timeutil.py wall_to_epoch does: a repeated time its first occurrence, a time in
-- a gap the transition instant.
local function wl_wall(kit, w)
  local best = nil
  for i, off in ipairs(kit.zoff) do
    local x, nxt = w - off, kit.zat[i + 1]
    if (i == 1 or x >= kit.zat[i]) and (not nxt or x < nxt) and (not best or x < best) then best = x end
  end
  if best then return best end
  for i = 2, #kit.zat do
    if w >= kit.zat[i] + kit.zoff[i - 1] and w < kit.zat[i] + kit.zoff[i] then return kit.zat[i] end
  end
end

-- The bounds [ds, de) of the local date of instant t (engine/timeutil.py day_bounds), or nil without offsets.
local function wl_day(kit, t)
  if #kit.zoff == 0 then return nil end
  local off = kit.zoff[1]
  for i = 2, #kit.zat do
    if kit.zat[i] <= t then off = kit.zoff[i] end
  end
  local w = t + off
  local m = w - w % DAY_S
  return wl_wall(kit, m), wl_wall(kit, m + DAY_S)
end

-- Whether an offer of visit type `vt` at t keeps within its daily limit `most` (nil: none), counted as hold.lua
-- counts (the waitlist waits: untidied expired holds count; the offers just made count).
local function wl_within(kit, vt, most, t, now)
  if not most then return true end
  local ds, de = wl_day(kit, t)
  if not ds then return false end
  return day_count(kit.claims, kit.ctypes, vt, ds, de, now, true) < most
end

local function wl_fits(e, t, d)
  for _, sp in ipairs(e.spans) do
    if sp[1] <= t and t + d <= sp[2] then return true end
  end
  return false
end

local function wl_had(e, interval)
  for _, h in ipairs(e.had) do
    if h == interval then return true end
  end
  return false
end

local function wl_offer(kit, e, patient, t, d, now, actor, request_id, cause)
  kit.used = kit.used + 1
  local id, key, finish, expires = kit.ids[kit.used], kit.keys[kit.used], t + d, now + kit.offer_ms
  local before, after = vt_rules(kit.vtypes, e.visit_type_id)
  redis.call('HSET', key, 'state', 'held', 'practice_id', kit.practice, 'practitioner_id', kit.pr,
    'visit_type_id', e.visit_type_id, 'start', int(t), 'end', int(finish), 'expires_ms', int(expires),
    'entry_id', e.id, 'occ_start', int(t - before), 'occ_end', int(finish + after))
  redis.call('PEXPIRE', key, kit.offer_ms + kit.retention_ms)
  redis.call('ZADD', kit.claims, t - before, 'h|' .. id .. '|' .. int(finish + after) .. '|' .. int(expires))
  redis.call('ZADD', kit.holdexp, expires, id)
  redis.call('HSET', kit.ctypes, id, e.visit_type_id .. '|' .. int(t))
  res_claim(kit.rclaims, key, res_ids(kit.vtypes, e.visit_type_id), 'h', id, t, finish, expires)
  bump_claim(kit.versions, t - before, finish + after)
  e.status, e.lapsed_ms = 'offered', cjson.null
  wl_waiting(kit.wait, e, false)
  e.offer = {hold_id = id, practitioner_id = kit.pr, start = t, ['end'] = finish, expires_ms = expires}
  e.had[#e.had + 1] = kit.pr .. '|' .. int(t) .. '|' .. int(finish)
  redis.call('HINCRBY', kit.stats, 'offers', 1)
  local rids = res_ids(kit.vtypes, e.visit_type_id)
  wl_change(kit, e, patient, now, 'waitlist_offer', actor, request_id, kit.pr, id, nil,
    {start = t, ['end'] = finish, expires_ms = expires, cause = cause, resource_ids = #rids > 0 and rids or nil})
end

-- Offer what a change made available to the waiting entries, oldest first (invariant 11). candidates(vt, d):
-- the slot starts of that visit type the change made available, sorted. Each waiting entry that may take this
-- practitioner takes the earliest start that fits one of its spans, was never offered to it, is offered by
-- notice and horizon, and overlaps no claim (expired holds included, the offers just made included) and, for a
-- visit type that needs rooms or equipment, finds each open and unclaimed over the visit (res_taken: an offer
-- occupies what a booking would, wl_offer claims them); at most
-- one offer per entry, at most OFFERS_PER_INTERVAL offers per call (one freed interval, or one schedule day: when
-- a call frees several intervals, each gets its own share of the kit's hold ids, engine/limits.py) and no more
-- than the kit has hold ids left. `exclude`: an entry left out (the one that
-- just gave the interval up). Entries whose window passed are dropped from the queue (no event: they read
-- 'ended'). Returns the number of offers made.
local function offer_parts(parts, now, actor, request_id, cause, exclude)
  -- the entries that can take a candidate: indexed under its visit type, on the UTC day it starts, naming the
  -- part's practitioner or none (docs/waitlist.md, "The index"); then oldest first over every part (the order is
  -- zero-padded), so the earliest-joined entry is served first whichever practitioner's start it takes
  local seen, found = {}, {}
  for pi, part in ipairs(parts) do
    local kit = part.kit
    part.cap, part.cands = math.min(#kit.ids, kit.used + OFFERS_PER_INTERVAL), {}
    if kit.used < part.cap then
      for vt, d in pairs(kit.dur) do
        local cs = part.candidates(vt, d)
        if #cs > 0 then
          part.cands[vt] = cs
          local lo, hi = nil, nil
          for _, s in ipairs(cs) do
            local day = math.floor(tonumber(s) / DAY_S)
            if not lo or day < lo then lo = day end
            if not hi or day > hi then hi = day end
          end
          for day = lo, hi do
            for _, who in ipairs({kit.pr, '*'}) do
              local p = vt .. '|' .. int(day) .. '|' .. who .. '|'
              for _, m in ipairs(redis.call('ZRANGEBYLEX', kit.ix, '[' .. p, '[' .. p .. '\255')) do
                local order, id = string.match(m, '^.*|(%d+)|([^|]+)$')
                if not seen[id .. '|' .. pi] then
                  seen[id .. '|' .. pi] = true
                  found[#found + 1] = {order, id, m, pi}
                end
              end
            end
          end
        end
      end
    end
  end
  table.sort(found, function(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    return x[4] < y[4]
  end)
  local made = 0
  for _, f in ipairs(found) do
    local part = parts[f[4]]
    local kit, id = part.kit, f[2]
    if kit.used < part.cap then
      local raw = redis.call('HGET', kit.entries, id)
      if not raw then
        redis.call('ZREM', kit.ix, f[3])
      elseif id ~= exclude and string.find(raw, '"status":"waiting"', 1, true) then
        local e, patient = wl_split(raw)
        local d = kit.dur[e.visit_type_id]
        if e.spans[#e.spans][2] * 1000 <= now then
          wl_unqueue(kit, e)
        elseif d and e.status == 'waiting' and (absent(e.practitioner_id) or e.practitioner_id == kit.pr) then
          local before, after, most = vt_rules(kit.vtypes, e.visit_type_id)
          local rids = res_ids(kit.vtypes, e.visit_type_id)
          for _, s in ipairs(part.cands[e.visit_type_id] or {}) do
            local t = tonumber(s)
            if t * 1000 >= now + kit.notice_ms and (not kit.horizon_ms or t * 1000 <= now + kit.horizon_ms)
                and wl_fits(e, t, d) and not wl_had(e, kit.pr .. '|' .. int(t) .. '|' .. int(t + d))
                and #live_overlaps(kit.claims, t - before, t + d + after, now, nil, true) == 0
                and wl_within(kit, e.visit_type_id, most, t, now)
                and not res_taken(kit.resources, kit.rclaims, rids, t, t + d, now, true) then
              wl_offer(kit, e, patient, t, d, now, actor, request_id, cause)
              made = made + 1
              break
            end
          end
        end
      end
    end
  end
  return made
end

-- The parts (offer_parts) for the starts of `kits` (the kit itself, kit.others) whose slot overlaps [fs, fe), of
-- the visit types that need one of the resources `rooms` ('a,b') names: a freed room or piece of equipment may be
-- what entries waiting for any practitioner's visit lacked. Each is checked as any offer is (its practitioner's
-- claims, every resource, limits, notice, horizon), with OFFERS_PER_INTERVAL of its own.
local function room_parts(kit, kits, fs, fe, rooms)
  local freed_ids, needs, parts = {}, {}, {}
  for _, rid in ipairs(res_split(rooms)) do freed_ids[rid] = true end
  for vt in pairs(kit.dur) do  -- the visit types that need one of the freed rooms, read once
    for _, rid in ipairs(res_ids(kit.vtypes, vt)) do
      if freed_ids[rid] then needs[vt] = true end
    end
  end
  if not next(needs) then return parts end
  for _, o in ipairs(kits) do
    wl_limits(o)
    parts[#parts + 1] = {kit = o, candidates = function(vt, d)
      if not needs[vt] then return {} end
      return redis.call('ZRANGEBYSCORE', o.base[vt], '(' .. int(fs - d), '(' .. int(fe))
    end}
  end
  return parts
end

-- offer_parts for the kit's practitioner's candidates and, when the change freed rooms or equipment (`candidates`
-- made by freed() with their ids), for each other practitioner of the practice (kit.others, room_parts), all in
-- one walk of the entries, oldest first.
local function offer_freed(kit, now, actor, request_id, cause, candidates, exclude)
  if not kit.on or not kit.ok then return 0 end
  local parts = {{kit = kit, candidates = candidates}}
  if type(candidates) == 'table' and kit.others and #kit.others > 0 then
    for _, part in ipairs(room_parts(kit, kit.others, candidates.fs, candidates.fe, candidates.rooms)) do
      parts[#parts + 1] = part
    end
  end
  return offer_parts(parts, now, actor, request_id, cause, exclude)
end

-- candidates for a freed interval [fs, fe): the starts whose slot lies inside it, in time order (time next to it
-- was free before and is no part of what this change frees: docs/waitlist.md). `rooms`: the resources the change
-- freed ('a,b', nil: none), whose other practitioners' starts offer_freed offers too.
local function freed(kit, fs, fe, rooms)
  return setmetatable({fs = fs, fe = fe, rooms = rooms}, {__call = function(_, vt, d)
    return redis.call('ZRANGEBYSCORE', kit.base[vt], int(fs), int(fe - d))
  end})
end

-- ---------------------------------------------------------------- cancels (cancel.lua, series_cancel.lua)
-- Cancel the booked appointment k.appt, its occupation given back at once (to the waitlist first, by kit): status
-- 'cancelled', version + 1, its member out of k.claims, k.versions bumped, its rooms and equipment freed (the kit's
-- resource claims), 'cancel' appended to k.events (k.audit).
-- c: now (the ARGV string), id, practitioner (as the caller read it), actor, request_id, reason, kit (wl_kit of
-- that practitioner); c.ahead: leave one that has begun as it is; c.check: only say what it would do (nil: it
-- would cancel), changing nothing (a script cancelling several checks them all first).
-- Returns {'OK', version} | {'ALREADY', version} | {'BEGUN', version} | {'NOT_FOUND'} | {'RETRY'} (its
-- practitioner is not the one the caller read) | {'KIT'} (entries wait and the kit cannot offer: nothing changed)
local function cancel_appt(k, c)
  local a = redis.call('HMGET', k.appt, 'status', 'practitioner_id', 'end', 'version', 'practice_id', 'start',
    'occ_start', 'occ_end', 'resources')
  if not a[1] then return {'NOT_FOUND'} end
  if a[2] ~= c.practitioner then return {'RETRY'} end
  if a[1] == 'cancelled' then return {'ALREADY', a[4]} end
  if c.ahead and tonumber(a[6]) * 1000 <= tonumber(c.now) then return {'BEGUN', a[4]} end
  local kit = c.kit
  if kit.on and not kit.ok then return {'KIT'} end
  if c.check then return nil end
  local version = int(tonumber(a[4]) + 1)
  redis.call('HSET', k.appt, 'status', 'cancelled', 'version', version, 'cancel_reason', c.reason,
    'updated_ms', c.now)
  local occ_start, occ_end = tonumber(a[7] or a[6]), tonumber(a[8] or a[3])
  redis.call('ZREM', k.claims, 'b|' .. c.id .. '|' .. int(occ_end) .. '|0')
  bump_claim(k.versions, occ_start, occ_end)
  res_free(kit.rclaims, a[9], 'b', c.id, tonumber(a[3]), 0)
  emit(k.events, k.audit, c.now, 'cancel', c.actor, a[5], a[2], nil, c.id, c.request_id,
    {version = tonumber(version), start = tonumber(a[6]), ['end'] = tonumber(a[3]), has_reason = c.reason ~= '',
     resource_ids = a[9] and a[9] ~= '' and res_split(a[9]) or nil},
    cjson.encode({id = c.id, status = 'cancelled', version = tonumber(version), cancel_reason = c.reason}))
  offer_freed(kit, tonumber(c.now), c.actor, c.request_id, 'cancel', freed(kit, occ_start, occ_end, a[9]))
  return {'OK', version}
end

-- series_hold: hold every occurrence of a series (one practitioner and visit type, one instant per occurrence) in
-- one step, or none. Each occurrence is checked exactly as hold.lua checks a single hold (claim_refusal), and
-- against the occurrences before it (their occupations and their places in a daily limit); each one taken is an
-- ordinary hold (claim_take) whose hash names the series.
-- KEYS: 1 base zset (practitioner, visit type)  2 claims zset (practitioner)  3 schedule hash (practitioner)
--       4 series hash  5 hold expiry zset (practice)  6 events stream  7 audit hash  8 idempotency key
--       9 availability versions (practitioner)  10 waitlist queue  11 visit types hash (practice)
--       12 claim types hash (practitioner)  13 resources hash (practice)  14 resource claims zset (practice): each
--       occurrence claims the rooms and equipment its visit type needs, as hold.lua does, then one hold hash per
--       occurrence, in order
-- ARGV: 1 now_ms  2 series_id  3 ttl_ms  4 retention_ms  5 practice_id  6 practitioner_id  7 visit_type_id
--       8 actor  9 request_id  10 idempotency fingerprint or ''  11 response json (stored for idempotent replays)
--       12 every_days  13 n occurrences, then per occurrence five values: hold_id, start_s, end_s and the bounds
--       of the start's local date (epoch s)
-- A retry of the same call (same series_id) answers {'OK'} again and changes nothing.
-- Returns {'OK'} | {'REPLAY', response} | {'IDEM_MISMATCH'} | {'UNAVAILABLE', start_s...} (each occurrence not
-- offered; nothing changed)
local now, n = tonumber(ARGV[1]), tonumber(ARGV[13])
local replay = idem_lookup(KEYS[8], ARGV[10])
if replay then return replay end
if redis.call('EXISTS', KEYS[4]) == 1 then return {'OK'} end
local strict = redis.call('ZCARD', KEYS[10]) > 0
local occ, refused, ids = {}, {}, {}
for i = 1, n do
  local a = 13 + (i - 1) * 5
  local c = {base = KEYS[1], claims = KEYS[2], schedule = KEYS[3], hold = KEYS[14 + i], holdexp = KEYS[5],
    ver = KEYS[9], vtypes = KEYS[11], types = KEYS[12], resources = KEYS[13], rclaims = KEYS[14], vt = ARGV[7], start = tonumber(ARGV[a + 2]),
    finish = tonumber(ARGV[a + 3]), ds = tonumber(ARGV[a + 4]), de = tonumber(ARGV[a + 5]), same_day = 0,
    extra = {'series_id', ARGV[2]}}
  for _, o in ipairs(occ) do
    if o.start >= c.ds and o.start < c.de then c.same_day = c.same_day + 1 end
  end
  local why = claim_refusal(c, now, strict)
  if not why then
    for _, o in ipairs(occ) do
      if o.occ_start < c.occ_end and c.occ_start < o.occ_end then why = 'series_overlap' end
    end
  end
  if why then refused[#refused + 1] = ARGV[a + 2] end
  occ[i], ids[i] = c, ARGV[a + 1]
end
if #refused > 0 then return {'UNAVAILABLE', unpack(refused)} end
local ttl, retention = tonumber(ARGV[3]), tonumber(ARGV[4])
local expires = int(now + ttl)
for i, c in ipairs(occ) do
  claim_take(c, ids[i], ARGV[5], ARGV[6], expires, ttl, retention)
  emit(KEYS[6], KEYS[7], ARGV[1], 'hold', ARGV[8], ARGV[5], ARGV[6], ids[i], nil, ARGV[9],
    {visit_type_id = ARGV[7], start = c.start, ['end'] = c.finish, expires_ms = tonumber(expires),
     series_id = ARGV[2], resource_ids = #c.rids > 0 and c.rids or nil}, nil)
end
redis.call('HSET', KEYS[4], 'state', 'held', 'practice_id', ARGV[5], 'practitioner_id', ARGV[6],
  'visit_type_id', ARGV[7], 'every_days', ARGV[12], 'count', int(n), 'holds', table.concat(ids, ','),
  'expires_ms', expires, 'created_ms', ARGV[1])
redis.call('PEXPIRE', KEYS[4], ttl + retention)
idem_store(KEYS[8], ARGV[10], ARGV[11])
return {'OK'}

-- series_book: book every occurrence of a held series at once, or none. Each occurrence is refused and booked
-- exactly as book.lua books a single hold (book_refusal, book_take: its own appointment, claim and 'book' event,
-- the event's detail naming the series); the series hash then names the appointments and their manage token.
-- KEYS: 1 series hash  2 claims zset (the series' practitioner)  3 hold expiry zset  4 events  5 audit
--       6 idempotency key  7 claim types hash (the series' practitioner)  8 resources hash (practice)
--       9 resource claims zset (practice): each hold's rooms and equipment become its appointment's, then per
--       occurrence two keys: its hold hash, its appointment hash
-- ARGV: 1 now_ms  2 series_id  3 patient json  4 manage token hash  5 actor  6 request_id
--       7 idempotency fingerprint or ''  8 the answer to store for replays  9 patient_id (pseudonymous, for the
--       audit)  10 n occurrences, then per occurrence two values: its hold_id, its appointment_id
-- A retry of the same call (same appointment ids) answers {'OK'} again and changes nothing.
-- Returns {'OK'} | {'REPLAY', response} | {'IDEM_MISMATCH'} | {'NOT_FOUND'} | {'USED', ''} | {'EXPIRED', state}
--       | {'OVERLAP'} | {'UNAVAILABLE', 'resource_taken'} (nothing changed unless OK)
local now, n = tonumber(ARGV[1]), tonumber(ARGV[10])
local replay = idem_lookup(KEYS[6], ARGV[7])
if replay then return replay end
local s = redis.call('HMGET', KEYS[1], 'state', 'holds', 'appointments', 'every_days', 'count')
if not s[1] then return {'NOT_FOUND'} end
local holds, appts = {}, {}
for i = 1, n do holds[i], appts[i] = ARGV[9 + 2 * i], ARGV[10 + 2 * i] end
if s[2] ~= table.concat(holds, ',') then return {'NOT_FOUND'} end
if s[1] == 'booked' then
  if s[3] == table.concat(appts, ',') then return {'OK'} end
  return {'USED', ''}
end
local hs = {}
for i = 1, n do
  local h = redis.call('HMGET', KEYS[8 + 2 * i], unpack(BOOK_FIELDS))
  if not h[1] then return {'EXPIRED', 'expired'} end
  local refusal = book_refusal({claims = KEYS[2], resources = KEYS[8], rclaims = KEYS[9]}, h, holds[i], now)
  if refusal then
    if refusal[1] == 'USED' then return {'USED', ''} end
    return refusal
  end
  hs[i] = h
end
for i = 1, n do
  book_take({claims = KEYS[2], holdexp = KEYS[3], types = KEYS[7], hold = KEYS[8 + 2 * i], appt = KEYS[9 + 2 * i],
    events = KEYS[4], audit = KEYS[5], rclaims = KEYS[9]}, hs[i], {hold_id = holds[i], appt_id = appts[i], patient = ARGV[3],
    manage_hash = ARGV[4], now = ARGV[1], actor = ARGV[5], request_id = ARGV[6], patient_id = ARGV[9],
    series = {series_index = i, every_days = tonumber(s[4]), count = tonumber(s[5])}})
end
redis.call('HSET', KEYS[1], 'state', 'booked', 'appointments', table.concat(appts, ','), 'manage_hash', ARGV[4],
  'booked_ms', ARGV[1])
redis.call('HDEL', KEYS[1], 'expires_ms', 'created_ms')  -- booked: what reconciliation rebuilds, exactly
redis.call('PERSIST', KEYS[1])
idem_store(KEYS[6], ARGV[7], ARGV[8])
return {'OK'}

-- book: turn a live hold into a booked appointment, in one step. Booking a waitlist offer's hold accepts it:
-- the entry 'booked', off the queue, 'waitlist_accept' after 'book'.
-- KEYS: 1 hold hash  2 claims zset (the hold's practitioner)  3 appointment hash  4 hold expiry zset
--       5 events  6 audit  7 idempotency key  8 waitlist queue  9 waitlist entries  10 waitlist stats
--       11 waitlist index  12 waiting entries
--       13 claim types hash (the hold's practitioner; daily limits: the appointment counts where its hold did)
--       14 resources hash (practice)  15 resource claims zset (practice): the hold's rooms and equipment become
--       the appointment's ('resource_taken' when one was closed meanwhile)
-- ARGV: 1 now_ms  2 hold_id  3 appointment_id  4 patient json  5 manage token hash  6 actor  7 request_id
--       8 idempotency fingerprint or ''  9 the answer to store for replays (sealed, without the interval: the
--       script appends the hold's '\n<visit_type_id>\n<start>\n<end>')  10 patient_id (pseudonymous, for the audit)
--       11 whose waitlist offer the caller may book: '*' any (staff, admin), an entry id (that entry's accept),
--          '' none (a waitlist offer's hold is then not offered to this caller: UNAVAILABLE)
-- A retry of the same call (same appointment_id) answers {'OK', ...} again and changes nothing.
-- Returns {'OK', visit_type_id, start, end} | {'REPLAY', response} | {'IDEM_MISMATCH'} | {'NOT_FOUND'} | {'USED', appointment_id}
--       | {'EXPIRED', state} | {'OVERLAP'} | {'UNAVAILABLE', 'waitlist_offer' | 'series' | 'resource_taken'}
local now = tonumber(ARGV[1])
local replay = idem_lookup(KEYS[7], ARGV[8])
if replay then return replay end
local h = redis.call('HMGET', KEYS[1], unpack(BOOK_FIELDS))
local state = h[1]
if not state then return {'NOT_FOUND'} end
-- appointment ids are new for each request: a hold booked by this very id means this call already ran (a client
-- retry after a lost answer): answer as the first time did, and change nothing
if state == 'booked' and h[8] == ARGV[3] then return {'OK', h[4], h[5], h[6]} end
-- a waitlist offer is booked only through its entry (accept, with the manage token) or by staff
if h[9] and ARGV[11] ~= '*' and ARGV[11] ~= h[9] then return {'UNAVAILABLE', 'waitlist_offer'} end
-- a series' occurrence is booked with its series (series_book.lua), never alone
if h[12] then return {'UNAVAILABLE', 'series'} end
local k = {claims = KEYS[2], holdexp = KEYS[4], types = KEYS[13], hold = KEYS[1], appt = KEYS[3], events = KEYS[5],
  audit = KEYS[6], resources = KEYS[14], rclaims = KEYS[15]}
local refusal = book_refusal(k, h, ARGV[2], now)
if refusal then return refusal end
book_take(k, h, {hold_id = ARGV[2], appt_id = ARGV[3], patient = ARGV[4], manage_hash = ARGV[5], now = ARGV[1],
  actor = ARGV[6], request_id = ARGV[7], patient_id = ARGV[10]})
if h[9] then
  wl_accept({queue = KEYS[8], entries = KEYS[9], stats = KEYS[10], events = KEYS[5], audit = KEYS[6], ix = KEYS[11],
    wait = KEYS[12]}, h[9], ARGV[2], ARGV[3], now, ARGV[6], ARGV[7])
end
idem_store(KEYS[7], ARGV[8], ARGV[9] .. '\n' .. h[4] .. '\n' .. h[5] .. '\n' .. h[6])
return {'OK', h[4], h[5], h[6]}

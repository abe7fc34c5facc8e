-- cancel: cancel a booked appointment and give its interval back at once (to the waitlist first). Idempotent.
-- The body is the prelude's cancel_appt (series_cancel.lua cancels each occurrence of a series with it too).
-- KEYS: 1 appointment hash  2 claims zset of the practitioner the caller read  3 events  4 audit
--       5 availability versions of that practitioner, then the waitlist kit of that practitioner (wl_kit; its
--       resource claims zset: the appointment's rooms and equipment are freed at once)
-- ARGV: 1 now_ms  2 appointment_id  3 practitioner_id the caller read  4 actor  5 request_id  6 reason, then the kit
-- Returns {'OK', version} | {'ALREADY', version} | {'NOT_FOUND'} | {'RETRY'} (practitioner moved meanwhile)
--       | {'KIT'} (entries wait and the kit cannot offer: nothing changed)
return cancel_appt({appt = KEYS[1], claims = KEYS[2], events = KEYS[3], audit = KEYS[4], versions = KEYS[5]},
  {now = ARGV[1], id = ARGV[2], practitioner = ARGV[3], actor = ARGV[4], request_id = ARGV[5], reason = ARGV[6],
   kit = wl_kit(6, 7)})

-- series_cancel: cancel every occurrence of a booked series still ahead, in one step: each exactly as cancel.lua
-- cancels a single appointment (the prelude's cancel_appt: status, claim, versions, its 'cancel' event, its
-- occupation offered to the waitlist first); one already cancelled or that has begun stays as it is. Every
-- occurrence is checked before any is cancelled: on a refusal nothing changes. Idempotent: a retry cancels none.
-- Each occurrence may have been rescheduled onto another practitioner: the occurrences are grouped by the
-- practitioner the caller read, one group per practitioner with its claims, versions and waitlist kit.
-- KEYS: 1 series hash  2 events  3 audit, then one appointment hash per occurrence, then per practitioner group:
--       its claims zset, its availability versions, then its waitlist kit (wl_kit)
-- ARGV: 1 now_ms  2 series_id  3 actor  4 request_id  5 reason  6 n occurrences, then per occurrence two values:
--       its appointment_id, its group (1-based), then the number of groups, then per group: the number of its kit's
--       KEYS, then its kit's ARGV (wl_kit: practice_id, the practitioner the caller read, ...)
-- Returns {'OK', cancelled} (how many this call cancelled) | {'NOT_FOUND'} (no booked series, or an occurrence
--       left Redis meanwhile) | {'RETRY'} (an occurrence moved to another practitioner meanwhile) | {'KIT'}
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'booked' then return {'NOT_FOUND'} end
local n = tonumber(ARGV[6])
local ng = tonumber(ARGV[7 + 2 * n])
local groups = {}
local ki, ai = 4 + n, 8 + 2 * n
for g = 1, ng do
  -- a kit's ARGV: as many as wl_kit_argc counts; its KEYS: as the caller says
  local nkeys = tonumber(ARGV[ai])
  ai = ai + 1
  groups[g] = {claims = KEYS[ki], versions = KEYS[ki + 1], pr = ARGV[ai + 1], kit = wl_kit(ki + 2, ai)}
  ki, ai = ki + 2 + nkeys, ai + wl_kit_argc(ai)
end
local function step(i, check)
  local g = groups[tonumber(ARGV[6 + 2 * i])]
  return cancel_appt({appt = KEYS[3 + i], claims = g.claims, events = KEYS[2], audit = KEYS[3],
    versions = g.versions}, {now = ARGV[1], id = ARGV[5 + 2 * i], practitioner = g.pr, actor = ARGV[3],
    request_id = ARGV[4], reason = ARGV[5], kit = g.kit, ahead = true, check = check})
end
for i = 1, n do
  local refusal = step(i, true)
  if refusal and (refusal[1] == 'NOT_FOUND' or refusal[1] == 'RETRY' or refusal[1] == 'KIT') then
    return refusal
  end
end
local done = 0
for i = 1, n do
  if step(i, false)[1] == 'OK' then done = done + 1 end
end
return {'OK', done}

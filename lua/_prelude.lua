-- Shared helpers, prepended to every script when it is registered (engine/scripts/registry.py).
-- Claims are members of a practitioner's claims zset, scored by start (epoch seconds):
--   'b|<appointment_id>|<end_s>|0'          a booked appointment
--   'h|<hold_id>|<end_s>|<expires_ms>'      a hold, live while now_ms < expires_ms
local unpack = unpack or table.unpack  -- Lua 5.1 (Redis) and 5.4 (embedded)
-- MAX_DURATION_S (the longest visit type, engine/limits.py) bounds every overlap look-up; engine/scripts/registry.py
-- defines it above this prelude.

local function int(x) return string.format('%d', x) end

-- An empty table encodes as '{}' everywhere (cjson implementations differ on it).
local function encode(t)
  if next(t) == nil then return '{}' end
  return cjson.encode(t)
end

-- Append one event to the practice's stream. Audited actions take the next audit sequence number.
local function emit(stream, audit, now_ms, typ, actor, practice, practitioner, hold, appt, request_id, detail, data)
  local seq = '0'
  if audit then seq = int(redis.call('HINCRBY', audit, 'seq', 1)) end
  redis.call('XADD', stream, '*', 'v', '1', 'type', typ, 'seq', seq, 'at', now_ms, 'actor', actor,
    'practice_id', practice, 'practitioner_id', practitioner or '', 'hold_id', hold or '',
    'appointment_id', appt or '', 'request_id', request_id, 'detail', encode(detail), 'data', data or '')
  return seq
end

-- Live claims overlapping [start, finish), skipping `ignore` (a member string) and expired holds.
local function live_overlaps(claims_key, start, finish, now_ms, ignore)
  local found = {}
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', claims_key, start - MAX_DURATION_S, '(' .. int(finish))) do
    local kind, _, cend, exp = string.match(m, '^(%a)|([^|]+)|(%d+)|(%d+)$')
    local live = kind == 'b' or tonumber(exp) > now_ms
    if m ~= ignore and live and tonumber(cend) > start then found[#found + 1] = m end
  end
  return found
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

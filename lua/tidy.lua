-- tidy: take an appointment that ended before the cut out of Redis, only when the database holds its current
-- version and status (the retention tidy, persistence/retention.py); it is read from the database afterwards.
-- KEYS: 1 appointment hash  2 claims zset of the practitioner the caller read
-- ARGV: 1 cut_s (now minus the retention period)  2 appointment_id  3 version the database holds
--       4 status the database holds  5 practitioner_id of the claims zset in KEYS[2]
-- Returns {'OK'} (removed) | {'KEEP', 'missing' | 'recent' (it ends at or after the cut) | 'unstored' (Redis holds
-- another version, status or practitioner: a change the persister has not stored yet)}
local a = redis.call('HMGET', KEYS[1], 'end', 'version', 'status', 'practitioner_id', 'occ_end')
if not a[1] then return {'KEEP', 'missing'} end
if tonumber(a[1]) >= tonumber(ARGV[1]) then return {'KEEP', 'recent'} end
if a[2] ~= ARGV[3] or a[3] ~= ARGV[4] or a[4] ~= ARGV[5] then
  return {'KEEP', 'unstored'}
end
redis.call('ZREM', KEYS[2], 'b|' .. ARGV[2] .. '|' .. (a[5] or a[1]) .. '|0')
redis.call('DEL', KEYS[1])
return {'OK'}

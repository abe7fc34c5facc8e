-- restore: put a durable appointment back into Redis (reconciliation). Never creates an overlap:
-- a booked appointment that would overlap another booked one is refused and reported; a live hold in its way
-- loses its claim (the acknowledged booking wins; booking that hold later finds the overlap and fails).
-- KEYS: 1 appointment hash  2 claims zset of its practitioner  3 claims zset of the practitioner Redis had
--       4, 5 availability versions of those two practitioners ('all' is bumped: restores are rare)
--       6 visit types hash: the appointment occupies [start - before, end + after] by its visit type's buffers now
--       7 claim types hash of its practitioner (daily limits)
--       8 resource claims zset (practice): a booked appointment claims its resources (ARGV 15) over [start, end)
--       (a live hold in its way loses its claim there too; another booking there is a CONFLICT)
-- ARGV: 1 now_ms  2 appointment_id  3 status  4 version  5 practice_id  6 practitioner_id  7 visit_type_id
--       8 start_s  9 end_s  10 patient json  11 manage_hash  12 hold_id  13 cancel_reason  14 updated_ms
--       15 the resource ids it claimed, comma-separated as stored ('' none; '*' not stored: the ones its visit
--       type needs now)
-- Returns {'OK'} | {'SKIP', version Redis has} | {'CONFLICT', member, ...}
local cur = redis.call('HMGET', KEYS[1], 'version', 'end', 'occ_end')
if cur[1] and tonumber(cur[1]) >= tonumber(ARGV[4]) then return {'SKIP', cur[1]} end
local before, after = vt_rules(KEYS[6], ARGV[7])
local occ_start, occ_end = tonumber(ARGV[8]) - before, tonumber(ARGV[9]) + after
local member = 'b|' .. ARGV[2] .. '|' .. int(occ_end) .. '|0'
local rids = res_split(ARGV[15])
if ARGV[15] == '*' then rids = res_ids(KEYS[6], ARGV[7]) end
if ARGV[3] == 'booked' then
  local clash = {}
  for _, m in ipairs(live_overlaps(KEYS[2], occ_start, occ_end, tonumber(ARGV[1]), member)) do
    local kind, id = string.match(m, '^(%a)|([^|]+)|')
    if kind == 'h' then
      redis.call('ZREM', KEYS[2], m)
    elseif id ~= ARGV[2] then
      clash[#clash + 1] = m
    end
  end
  local rclash = res_restore_clear(KEYS[8], rids, tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[2])
  for _, m in ipairs(rclash) do clash[#clash + 1] = m end
  if #clash > 0 then return {'CONFLICT', unpack(clash)} end
end
res_free(KEYS[8], redis.call('HGET', KEYS[1], 'resources'), 'b', ARGV[2], tonumber(cur[2] or 0), 0)
redis.call('HDEL', KEYS[1], 'resources')
redis.call('HINCRBY', KEYS[4], 'all', 1)
redis.call('HINCRBY', KEYS[5], 'all', 1)
if cur[2] then redis.call('ZREM', KEYS[3], 'b|' .. ARGV[2] .. '|' .. (cur[3] or cur[2]) .. '|0') end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'version', ARGV[4], 'practice_id', ARGV[5], 'practitioner_id', ARGV[6],
  'visit_type_id', ARGV[7], 'start', ARGV[8], 'end', ARGV[9], 'patient', ARGV[10], 'manage_hash', ARGV[11],
  'hold_id', ARGV[12], 'cancel_reason', ARGV[13], 'updated_ms', ARGV[14], 'occ_start', int(occ_start),
  'occ_end', int(occ_end))
if ARGV[3] == 'booked' then
  redis.call('ZADD', KEYS[2], occ_start, member)
  redis.call('HSET', KEYS[7], ARGV[2], ARGV[7] .. '|' .. ARGV[8])
  res_claim(KEYS[8], KEYS[1], rids, 'b', ARGV[2], tonumber(ARGV[8]), tonumber(ARGV[9]), 0)
else
  redis.call('ZREM', KEYS[2], member)
end
return {'OK'}

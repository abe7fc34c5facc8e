-- schedule: store a practitioner's schedule and start a new generation of its availability.
-- KEYS: 1 schedule hash  2 events  3 audit  4 availability versions (notice and horizon change every day: 'all')
-- ARGV: 1 now_ms  2 schedule json  3 min_notice_s  4 horizon_s  5 practice_id  6 practitioner_id  7 actor
--       8 request_id  9 detail json  10 'restore': put back a schedule Redis lost, without an event, and only
--       when no materialised schedule is there (the live one wins over the database's copy)
-- Returns the new generation number (apply_day calls must carry it); 0 when 'restore' found a live schedule.
if ARGV[10] == 'restore' and redis.call('HGET', KEYS[1], 'until') then return 0 end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'min_notice_s', ARGV[3], 'horizon_s', ARGV[4])
redis.call('HINCRBY', KEYS[4], 'all', 1)
if ARGV[10] ~= 'restore' then
  emit(KEYS[2], KEYS[3], ARGV[1], 'schedule', ARGV[7], ARGV[5], ARGV[6], nil, nil, ARGV[8], cjson.decode(ARGV[9]),
    ARGV[2])
end
return gen

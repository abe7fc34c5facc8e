-- put_entity: store one setup record (practice, practitioner, visit type) and its event, together.
-- KEYS: 1 hash  2 events  3 audit
-- ARGV: 1 now_ms  2 field  3 record json  4 event type  5 actor  6 request_id  7 practice_id
--       8 'restore': put back a record Redis lost (only if the field is absent), without an event
-- Returns {'OK'} | {'SKIP'} (restore: the record is there)
if ARGV[8] == 'restore' then
  if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return {'SKIP'} end
  return {'OK'}
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
emit(KEYS[2], nil, ARGV[1], ARGV[4], ARGV[5], ARGV[7], nil, nil, nil, ARGV[6], {}, ARGV[3])
return {'OK'}

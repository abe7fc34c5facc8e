-- resource: store a room or a piece of equipment of a practice (created, or its closures replaced) and its event,
-- together; the availability versions of every day its old or new closures touch are bumped in the same step, so
-- cached searches stay exact (a closure hides the slots of every practitioner whose visit type needs it).
-- KEYS: 1 resources hash (practice)  2 events  3 availability versions (practice)
-- ARGV: 1 now_ms  2 resource_id  3 record json (engine.model.Resource, with 'spans': its closures in epoch s)
--       4 actor  5 request_id  6 practice_id  7 'restore': put back a record Redis lost (only if absent), no event
-- Returns {'OK'} | {'SKIP'} (restore: the record is there)
if ARGV[7] == 'restore' then
  if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return {'SKIP'} end
  res_bump_spans(KEYS[3], cjson.decode(ARGV[3]).spans)
  return {'OK'}
end
local old = redis.call('HGET', KEYS[1], ARGV[2])
if old then res_bump_spans(KEYS[3], cjson.decode(old).spans) end
res_bump_spans(KEYS[3], cjson.decode(ARGV[3]).spans)
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
emit(KEYS[2], nil, ARGV[1], 'resource', ARGV[4], ARGV[6], nil, nil, nil, ARGV[5], {}, ARGV[3])
return {'OK'}

-- resource: store a room or a piece of equipment of a practice (created, or its closures replaced) and its event,
-- together; the availability versions of every day its old or new closures touch are bumped in the same step, so
-- cached searches stay exact (a closure hides the slots of every practitioner whose visit type needs it).
-- With a waitlist kit (closures replaced in a practice with practitioners): the time an old closure covered is
-- offered to the waiting entries first, for every practitioner (the kit's and its others), as a freed room is.
-- KEYS: 1 resources hash (practice)  2 events  3 availability versions (practice), then the waitlist kit of one
--       practitioner carrying all the others (wl_kit), or none
-- ARGV: 1 now_ms  2 resource_id  3 record json (engine.model.Resource, with 'spans': its closures in epoch s)
--       4 actor  5 request_id  6 practice_id  7 'restore': put back a record Redis lost (only if absent), no event,
--       then the waitlist kit (wl_kit), or none
-- Returns {'OK'} | {'SKIP'} (restore: the record is there) | {'KIT'} (entries wait and the kit cannot offer:
--       nothing changed)
if ARGV[7] == 'restore' then
  if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return {'SKIP'} end
  res_bump_spans(KEYS[3], cjson.decode(ARGV[3]).spans)
  return {'OK'}
end
local kit = #ARGV > 7 and wl_kit(4, 8) or nil
if kit and kit.on and not kit.ok then return {'KIT'} end
local old = redis.call('HGET', KEYS[1], ARGV[2])
local was = old and cjson.decode(old).spans or {}
res_bump_spans(KEYS[3], was)
res_bump_spans(KEYS[3], cjson.decode(ARGV[3]).spans)
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
emit(KEYS[2], nil, ARGV[1], 'resource', ARGV[4], ARGV[6], nil, nil, nil, ARGV[5], {}, ARGV[3])
if kit and kit.on then
  local kits = {kit}
  for _, o in ipairs(kit.others) do kits[#kits + 1] = o end
  for _, sp in ipairs(was) do  -- a part still closed refuses on its own (res_taken reads the new closures)
    offer_parts(room_parts(kit, kits, sp[1], sp[2], ARGV[2]), tonumber(ARGV[1]), ARGV[4], ARGV[5], 'resource', nil)
  end
end
return {'OK'}

-- waitlist_counters: raise the practice's waitlist counters to at least the given values (reconciliation: the
-- counts of the durable audit rows), never lowering one (events Redis has and the database not yet count too).
-- KEYS: 1 waitlist stats
-- ARGV: field, value pairs
-- Returns the number of counters raised.
local raised = 0
for i = 1, #ARGV, 2 do
  local have = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  if have < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    raised = raised + 1
  end
end
return raised

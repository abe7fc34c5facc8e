-- lease: take, renew or give back a practice's persister lease (persistence/shares.py; docs/redis-model.md).
-- KEYS: 1 the practice's lease (string: the owner, with a TTL)
-- ARGV: 1 owner · 2 ttl_ms (0: give it back)
-- Returns 1 when the owner holds the lease after the call (taken or renewed; 1 too when given back or already
-- free), 0 when another owner holds it (nothing is written).
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  return 0
end
if tonumber(ARGV[2]) <= 0 then
  if cur then
    redis.call('DEL', KEYS[1])
  end
  return 1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1

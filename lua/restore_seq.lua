-- restore_seq: make a practice number new audit events after the last one the database holds (reconciliation).
-- KEYS: 1 audit hash
-- ARGV: 1 last sequence number stored in the database
-- Returns the sequence number Redis had when it was behind (and is now raised), else -1.
local have = tonumber(redis.call('HGET', KEYS[1], 'seq') or 0)
if have < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'seq', ARGV[1])
  return have
end
return -1

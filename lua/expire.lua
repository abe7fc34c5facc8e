-- expire: tidy holds whose time ran out (correctness never waits for this: every reader compares
-- expires_ms with now). Marks them expired, drops their claims and appends one 'expire' event each.
-- KEYS: 1 hold expiry zset  2 events  3 audit, then per hold: hold hash, claims zset of its practitioner
-- ARGV: 1 now_ms  2 actor, then the hold ids in the same order
-- Returns the number of holds expired.
local now = tonumber(ARGV[1])
local expired = 0
for i = 3, #ARGV do
  local hold_key, claims_key, id = KEYS[2 + (i - 2) * 2], KEYS[3 + (i - 2) * 2], ARGV[i]
  local h = redis.call('HMGET', hold_key, 'state', 'end', 'expires_ms', 'practice_id', 'practitioner_id')
  if h[1] == 'held' and tonumber(h[3]) <= now then
    redis.call('HSET', hold_key, 'state', 'expired')
    redis.call('ZREM', claims_key, 'h|' .. id .. '|' .. h[2] .. '|' .. h[3])
    redis.call('ZREM', KEYS[1], id)
    emit(KEYS[2], KEYS[3], ARGV[1], 'expire', ARGV[2], h[4], h[5], id, nil, '', {expires_ms = tonumber(h[3])}, nil)
    expired = expired + 1
  elseif h[1] ~= 'held' then
    redis.call('ZREM', KEYS[1], id)
  end
end
return expired

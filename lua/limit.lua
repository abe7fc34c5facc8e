-- limit: abuse limits of one public client, in the manner of the `limits` library (sliding windows).
-- KEYS: 1 request log zset (this client and action)  2 live holds zset of this client
-- ARGV: 1 now_ms  2 window_ms  3 max requests per window  4 live-hold cap (0: not a hold)  5 hold_ttl_ms
--       6 member (unique request id; the hold id for holds)  7 a hold id to take off the live holds when the
--       request counts ('' none; a booking's: booking the hold makes room, without a round trip of its own)
-- Returns {'OK', requests left in the window, ms until the oldest leaves it, the expiry of the hold taken off
--   (0: it was not among the live holds)} | {'RATE', retry_after_ms} | {'HOLDS', retry_after_ms}
local now, window, max_req, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= max_req then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {'RATE', tonumber(oldest[2]) + window - now}
end
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= cap then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {'HOLDS', tonumber(first[2]) - now}
  end
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[5]), ARGV[6])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
end
redis.call('ZADD', KEYS[1], now, ARGV[6])
redis.call('PEXPIRE', KEYS[1], window)
local forgot = 0
if ARGV[7] and ARGV[7] ~= '' then
  forgot = tonumber(redis.call('ZSCORE', KEYS[2], ARGV[7]) or 0)
  redis.call('ZREM', KEYS[2], ARGV[7])
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {'OK', max_req - redis.call('ZCARD', KEYS[1]), tonumber(oldest[2]) + window - now, forgot}

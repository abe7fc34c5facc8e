-- search: free slot starts of one visit type for several practitioners in [from, to), and one 'search'
-- audit event with the count. Read-only apart from the audit append.
-- KEYS: per practitioner i = 1..n: base zset, claims zset, schedule hash (3n keys); then events, audit
-- ARGV: 1 now_ms  2 from_s  3 to_s (exclusive)  4 duration_s  5 n  6 actor  7 request_id  8 practice_id
--       9 detail json (what was asked)  10 '1' to audit
-- Returns one array of slot starts (integers, epoch seconds) per practitioner, in KEYS order.
local now, from, to, dur, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local out, total = {}, 0
for i = 1, n do
  local base, claims, sched = KEYS[i * 3 - 2], KEYS[i * 3 - 1], KEYS[i * 3]
  local notice, horizon = unpack(redis.call('HMGET', sched, 'min_notice_s', 'horizon_s'))
  local lo = math.max(from, math.ceil((now + tonumber(notice or 0) * 1000) / 1000))
  local hi = to
  if horizon then hi = math.min(hi, math.floor((now + tonumber(horizon) * 1000) / 1000) + 1) end
  local kept = {}
  if lo < hi then
    local starts = redis.call('ZRANGEBYSCORE', base, int(lo), '(' .. int(hi))
    if #starts > 0 then
      -- live claims near the range, sorted by start; they never overlap, so their ends are sorted too
      local cs, ce = {}, {}
      local first, last = tonumber(starts[1]), tonumber(starts[#starts])
      local near = redis.call('ZRANGEBYSCORE', claims, first - MAX_DURATION_S, '(' .. int(last + dur), 'WITHSCORES')
      for k = 1, #near, 2 do
        local kind, _, cend, exp = string.match(near[k], '^(%a)|([^|]+)|(%d+)|(%d+)$')
        if kind == 'b' or tonumber(exp) > now then
          cs[#cs + 1] = tonumber(near[k + 1])
          ce[#ce + 1] = tonumber(cend)
        end
      end
      local j = 1
      for _, s in ipairs(starts) do
        local t = tonumber(s)
        while j <= #ce and ce[j] <= t do j = j + 1 end
        if not (j <= #ce and cs[j] < t + dur) then kept[#kept + 1] = t end
      end
    end
  end
  out[i] = kept
  total = total + #kept
end
if ARGV[10] == '1' then
  local detail = cjson.decode(ARGV[9])
  detail.count = total
  emit(KEYS[3 * n + 1], KEYS[3 * n + 2], ARGV[1], 'search', ARGV[6], ARGV[8], nil, nil, nil, ARGV[7], detail, nil)
end
return out

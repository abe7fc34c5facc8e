-- search: free slot starts of one visit type for several practitioners in [from, to), and one 'search'
-- audit event with the count. Read-only apart from the audit append.
-- KEYS: per practitioner i = 1..n: base zset, claims zset, schedule hash, availability versions (4n keys);
--       then events, audit, waitlist queue (while entries wait, expired holds the sweeper has not tidied count as
--       taken: their interval goes to the waitlist first, docs/waitlist.md), practitioners hash
-- ARGV: 1 now_ms  2 from_s  3 to_s (exclusive)  4 duration_s  5 n  6 actor  7 request_id  8 practice_id
--       9 detail json (what was asked; with 'count' when n = 0: the audit of an answer from the cache)
--       10 '1' to audit  11 first and 12 last version bucket to report
--       13 how many practitioners the caller knows the practice has ('': not checked)
-- Returns 2n arrays: the slot starts (integers, epoch seconds) of each practitioner, in KEYS order, then per
-- practitioner {valid_until_ms, version 'all', versions of buckets 11..12}: the answer stays right while no
-- version moves and now_ms < valid_until_ms (a live hold expiring, a start falling inside the minimum notice, a
-- start entering the horizon), whichever comes first (0: no such instant). An untidied expired hold in the range
-- makes the answer right for this instant only (whether it counts depends on the waitlist, which may change).
-- Or 'ROSTER' (nothing done) when the practice has more practitioners than ARGV[13]: the caller's list is old.
local now, from, to, dur, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local first_b, last_b = tonumber(ARGV[11]), tonumber(ARGV[12])
if ARGV[13] ~= '' and redis.call('HLEN', KEYS[4 * n + 4]) ~= tonumber(ARGV[13]) then return 'ROSTER' end
local out, total = {}, 0
local strict = redis.call('ZCARD', KEYS[4 * n + 3]) > 0
local function earliest(a, b)
  if a == 0 or (b ~= 0 and b < a) then return b end
  return a
end
for i = 1, n do
  local base, claims, sched, ver = KEYS[i * 4 - 3], KEYS[i * 4 - 2], KEYS[i * 4 - 1], KEYS[i * 4]
  local notice, horizon = unpack(redis.call('HMGET', sched, 'min_notice_s', 'horizon_s'))
  local notice_ms = tonumber(notice or 0) * 1000
  local lo = math.max(from, math.ceil((now + notice_ms) / 1000))
  local hi = to
  if horizon then hi = math.min(hi, math.floor((now + tonumber(horizon) * 1000) / 1000) + 1) end
  local kept, valid = {}, 0
  if lo < hi then
    local starts = redis.call('ZRANGEBYSCORE', base, int(lo), '(' .. int(hi))
    if #starts > 0 then
      -- the first offered start leaves the answer when it falls inside the minimum notice
      valid = earliest(valid, tonumber(starts[1]) * 1000 - notice_ms + 1)
      -- claims near the range, sorted by start, overlapping ones merged (an untidied expired hold may overlap a
      -- live claim), so the ends are sorted too
      local cs, ce = {}, {}
      local first, last = tonumber(starts[1]), tonumber(starts[#starts])
      local near = redis.call('ZRANGEBYSCORE', claims, first - MAX_DURATION_S, '(' .. int(last + dur), 'WITHSCORES')
      for k = 1, #near, 2 do
        local kind, _, cend, exp = string.match(near[k], '^(%a)|([^|]+)|(%d+)|(%d+)$')
        local live = kind == 'b' or tonumber(exp) > now
        if not live then valid = earliest(valid, now + 1) end
        if live or strict then
          local cstart, cfin = tonumber(near[k + 1]), tonumber(cend)
          if #ce > 0 and cstart < ce[#ce] then
            ce[#ce] = math.max(ce[#ce], cfin)
          else
            cs[#cs + 1], ce[#ce + 1] = cstart, cfin
          end
          if kind == 'h' and live then valid = earliest(valid, tonumber(exp)) end  -- the hold's expiry frees it
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
  if horizon and hi < to then
    -- the first start beyond the horizon enters the answer when the horizon reaches it
    local beyond = redis.call('ZRANGEBYSCORE', base, int(math.max(hi, lo)), '(' .. int(to), 'LIMIT', 0, 1)
    if #beyond > 0 then valid = earliest(valid, tonumber(beyond[1]) * 1000 - tonumber(horizon) * 1000) end
  end
  local fields = {'all'}
  for b = first_b, last_b do fields[#fields + 1] = int(b) end
  local meta = {valid}
  for _, v in ipairs(redis.call('HMGET', ver, unpack(fields))) do meta[#meta + 1] = tonumber(v or 0) end
  out[i] = kept
  out[n + i] = meta
  total = total + #kept
end
if ARGV[10] == '1' then
  local detail = cjson.decode(ARGV[9])
  if detail.count == nil then detail.count = total end  -- set by the caller when it audits a cached answer
  emit(KEYS[4 * n + 1], KEYS[4 * n + 2], ARGV[1], 'search', ARGV[6], ARGV[8], nil, nil, nil, ARGV[7], detail, nil)
end
return out

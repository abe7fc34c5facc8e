-- search: free slot starts of one visit type for several practitioners in [from, to), and one 'search'
-- audit event with the count. Read-only apart from the audit append.
-- KEYS: per practitioner i = 1..n: base zset, claims zset, schedule hash, availability versions (4n keys);
--       then events, audit, waitlist queue (while entries wait, expired holds the sweeper has not tidied count as
--       taken: their interval goes to the waitlist first, docs/waitlist.md), practitioners hash, visit types hash
-- ARGV: 1 now_ms  2 from_s  3 to_s (exclusive)  4 duration_s  5 n  6 actor  7 request_id  8 practice_id
--       9 detail json (what was asked; with 'count' when n = 0: the audit of an answer from the cache)
--       10 '1' to audit  11 first and 12 last version bucket to report
--       13 how many practitioners the caller knows the practice has ('': not checked)  14 visit_type_id (its
--       buffers are read from the visit types hash: a start is kept when [start - before, start + duration + after]
--       overlaps no live claim's occupation, exactly as hold.lua checks it)  15 k, the number of local dates
--       asked, then their bounds (start, end) each: with a daily limit, a date whose practitioner already has
--       max_per_day live claims of the visit type keeps no start
-- KEYS after the visit types hash: per practitioner, its claim types hash (daily limits; n keys), then the
-- resources hash and the resource claims zset (practice): a start is kept only when every resource the visit type
-- needs is open and unclaimed over [start, start + duration), exactly as hold.lua checks it
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
local before, after, most = vt_rules(KEYS[4 * n + 5], ARGV[14])
local out, total = {}, 0
local strict = redis.call('ZCARD', KEYS[4 * n + 3]) > 0
local rcs, rce, rvalid = res_busy(KEYS[5 * n + 6], KEYS[5 * n + 7], res_ids(KEYS[4 * n + 5], ARGV[14]), from, to + dur,
  now, strict)
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
      local near = redis.call('ZRANGEBYSCORE', claims, first - before - MAX_OCCUPATION_S,
        '(' .. int(last + dur + after), 'WITHSCORES')
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
        while j <= #ce and ce[j] <= t - before do j = j + 1 end
        if not (j <= #ce and cs[j] < t + dur + after) then kept[#kept + 1] = t end
      end
    end
  end
  if #rcs > 0 and #kept > 0 then
    kept = res_keep(kept, dur, rcs, rce)
    valid = earliest(valid, rvalid)  -- a resource's hold expiring frees its slots
  end
  if most and #kept > 0 then
    -- a local date with max_per_day live claims of this visit type offers nothing more (hold.lua refuses it)
    local full = {}
    for d = 1, tonumber(ARGV[15]) do
      local ds, de = tonumber(ARGV[14 + 2 * d]), tonumber(ARGV[15 + 2 * d])
      local count, frees = day_count(claims, KEYS[4 * n + 5 + i], ARGV[14], ds, de, now, strict)
      if count >= most then
        full[#full + 1] = {ds, de}
        valid = earliest(valid, frees)  -- a counted hold expiring gives the place back
      end
    end
    if #full > 0 then
      local left = {}
      for _, t in ipairs(kept) do
        local out_of = false
        for _, f in ipairs(full) do
          if t >= f[1] and t < f[2] then out_of = true end
        end
        if not out_of then left[#left + 1] = t end
      end
      kept = left
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

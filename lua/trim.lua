-- trim: drop the stream entries older than a minimum id and, in the same step, record for each consumer group
-- that is left behind (no running consumer: persistence/trimming.py) the range of entries it may have missed.
-- KEYS: 1 events stream  2 stream gaps hash
-- ARGV: 1 min_ms (entries with an id below '<min_ms>-0' go)  2.. pairs: group, from_ms (the time of the oldest
--       entry that group still needed)
-- Returns the number of entries removed. A gap is stored as '<from_ms>:<to_ms>' and widened, never narrowed.
local min_ms = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  local from, to = tonumber(ARGV[i + 1]), min_ms
  if from < min_ms then
    local cur = redis.call('HGET', KEYS[2], ARGV[i])
    if cur then
      local f, t = string.match(cur, '^(%d+):(%d+)$')
      from, to = math.min(from, tonumber(f)), math.max(to, tonumber(t))
    end
    redis.call('HSET', KEYS[2], ARGV[i], int(from) .. ':' .. int(to))
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', int(min_ms) .. '-0')

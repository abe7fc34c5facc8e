-- api_key: create, revoke or restore a practice staff key. Only the key's SHA-256 is stored.
-- KEYS: 1 key records hash (key_id -> json)  2 key hashes hash (sha256 -> key_id)  3 events  4 audit
--       5 tombstones hash (key_id -> revoked_ms): a revoked key is never restored
-- ARGV: 1 now_ms  2 'create' | 'revoke' | 'restore'  3 key_id  4 sha256 of the key ('' on revoke)
--       5 record json ('' on revoke)  6 actor  7 request_id  8 practice_id
-- 'restore' puts back a live key Redis lost (reconciliation), without an event, only if the key is absent and
-- was never revoked (a revocation landing after reconciliation's snapshot wins).
-- Returns {'OK'} | {'NOT_FOUND'} (revoke of an unknown key) | {'SKIP'} (restore: the key is there or revoked)
if ARGV[2] == 'restore' then
  if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then return {'SKIP'} end
  if redis.call('HEXISTS', KEYS[5], ARGV[3]) == 1 then return {'SKIP'} end
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[5])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[3])
  return {'OK'}
end
if ARGV[2] == 'create' then
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[5])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[3])
  emit(KEYS[3], nil, ARGV[1], 'api_key', ARGV[6], ARGV[8], nil, nil, nil, ARGV[7], {}, ARGV[5])
  return {'OK'}
end
local record = redis.call('HGET', KEYS[1], ARGV[3])
if not record then return {'NOT_FOUND'} end
local key = cjson.decode(record)
redis.call('HDEL', KEYS[1], ARGV[3])
redis.call('HDEL', KEYS[2], key['hash'])
redis.call('HSET', KEYS[5], ARGV[3], ARGV[1])
emit(KEYS[3], nil, ARGV[1], 'api_key_revoked', ARGV[6], ARGV[8], nil, nil, nil, ARGV[7], {}, record)
return {'OK'}

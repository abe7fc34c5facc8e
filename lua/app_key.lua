-- app_key: create, revoke or restore an app key (a consumer booking app's backend). Only the key's SHA-256 is stored.
-- KEYS: 1 key records hash (key_id -> json)  2 key hashes hash (sha256 -> key_id)
--       3 tombstones hash (key_id -> revoked_ms): a revoked id is never created or restored again
-- ARGV: 1 now_ms  2 'create' | 'revoke' | 'restore'  3 key_id  4 sha256 of the key ('' on revoke)
--       5 record json ('' on revoke)  6 (revoke) '1': record the tombstone even when Redis lacks the key (the
--       database revoked it: a reconciliation that read it live must not put it back)
-- 'restore' puts back a live key Redis lost (reconciliation, from the database), only if the key is absent and was
-- never revoked (a revocation landing after reconciliation's read wins).
-- Returns {'OK'} | {'NOT_FOUND'} (revoke of an unknown or revoked key; create of a revoked id)
--       | {'SKIP'} (restore: the key is there or revoked)
if ARGV[2] == 'restore' then
  if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then return {'SKIP'} end
  if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return {'SKIP'} end
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[5])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[3])
  return {'OK'}
end
if ARGV[2] == 'create' then
  if redis.call('HEXISTS', KEYS[3], ARGV[3]) == 1 then return {'NOT_FOUND'} end
  redis.call('HSET', KEYS[1], ARGV[3], ARGV[5])
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[3])
  return {'OK'}
end
local record = redis.call('HGET', KEYS[1], ARGV[3])
if not record then
  if ARGV[6] == '1' and redis.call('HEXISTS', KEYS[3], ARGV[3]) == 0 then
    redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
  end
  return {'NOT_FOUND'}
end
local key = cjson.decode(record)
redis.call('HDEL', KEYS[1], ARGV[3])
redis.call('HDEL', KEYS[2], key['hash'])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1])
return {'OK'}

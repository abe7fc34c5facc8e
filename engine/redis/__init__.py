"""The one door to Redis: the only package that imports redis-py (and hiredis).

| module | what |
|---|---|
| ``clients`` | every client of the project, built from the settings; what "Redis unreachable" means (``UNREACHABLE``) |
| ``asyncio_client`` | the API's single-Redis client: a bounded pool, reads retried once, writes never re-sent |
| ``pipelined`` | the cached search's versions reads of a process on one pipelined connection (single Redis over TCP) |
| ``batching`` | searches of one loop iteration sharing one pipeline |
| ``pernode`` | the persister's reads, leases and acknowledgements node by node on a cluster |
| ``errors`` | the exception classes other packages catch (re-exported from redis-py) |
| ``private`` | the only code that touches redis-py's private API (cluster slot routing, the reply-error table, the COMMAND table read once); each use says why, and ``tests/unit/test_redis_private.py`` names the versions it was checked on |

Lua scripts are run through ``engine.scripts`` (declared once, one runner), which reaches Redis through here.
"""

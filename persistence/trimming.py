"""Trimming the event streams by what every *running* consumer still needs.

An entry goes once it is older than the retention window and every group that holds trimming back has read and
acknowledged it. The persisters' group always holds it back: nothing the persister has not stored is ever trimmed.
Any other group (the notifier's) holds it back only while one of its consumers is running: a consumer that read
within ``STREAM_GROUP_IDLE_SECONDS`` (each outbox step reads its pending entries, which resets its idle time even
when nothing is pending). A group left behind does not pin the streams; instead ``trim.lua`` records, in the same
step as the ``XTRIM``, the range of entries it may have missed (``keys.stream_gaps``), and that group's consumer
catches up on it from the database when it runs again (persistence/notify/catchup.py).
"""

from __future__ import annotations

from typing import Any

from engine import keys
from engine.codec import text
from engine.scripts import retention as scripts
from persistence.streams import _id_ms


def running(redis: Any, key: str, group: str, idle_bound_ms: int) -> bool:
    """Whether a consumer of ``group`` interacted with the stream within ``idle_bound_ms``."""
    return any(int(c.get("idle") or 0) < idle_bound_ms for c in redis.xinfo_consumers(key, group))


def trim_stream(redis: Any, lua: Any, key: str, practice_id: str, min_ms: int, idle_bound_ms: int) -> int:
    """Trim one stream below ``min_ms`` (the retention window) or what the groups holding it back still need;
    returns the number of entries removed."""
    safe = min_ms
    left_behind: list[tuple[str, int]] = []
    for info in redis.xinfo_groups(key):
        name = text(info.get("name") or info.get(b"name"))
        pending = int(info.get("pending") or 0)
        needs = _id_ms(text(info.get("last-delivered-id") or "0-0"))
        oldest = redis.xpending(key, name)["min"] if pending else None
        if oldest is not None:  # it may have been acknowledged since XINFO answered
            needs = min(needs, _id_ms(text(oldest)))
        if name != keys.PERSIST_GROUP and not running(redis, key, name, idle_bound_ms):
            left_behind.append((name, needs))
        else:
            safe = min(safe, needs)
    if safe <= 0:
        return 0
    call = scripts.trim_call(practice_id=practice_id, min_ms=safe, left_behind=left_behind)
    return int(lua(call))

"""What a message calls things, read from Redis at send time: the practice (its name and zone), the
practitioner's and the visit type's names (generic words when a record is missing)."""

from __future__ import annotations

from typing import Any

import msgspec

from engine import catalog, keys
from engine.model import Practice, Practitioner, VisitType


class Names(msgspec.Struct, frozen=True):
    timezone: str
    practice: str
    practitioner: str
    visit_type: str
    language: str = "en"  # the practice's


def names(redis: Any, practice_id: str, practitioner_id: str, visit_type_id: str) -> Names:
    pid = practice_id
    practice = catalog.decode(redis.hget(keys.practice(pid), "record"), Practice, "practice", pid)
    pr_raw = redis.hget(keys.practitioners(pid), practitioner_id)
    vt_raw = redis.hget(keys.visit_types(pid), visit_type_id)
    pr = catalog.decode(pr_raw, Practitioner, "practitioner", practitioner_id) if pr_raw else None
    vt = catalog.decode(vt_raw, VisitType, "visit type", visit_type_id) if vt_raw else None
    return Names(
        practice.timezone,
        practice.name,
        pr.name if pr else "your practitioner",
        vt.name if vt else "appointment",
        practice.language,
    )

"""What the seeder created and every scenario draws from (picklable, sent to the generator processes)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import msgspec


class PracticeData(msgspec.Struct):
    id: str
    timezone: str
    practitioners: list[str]
    visit_types: list[tuple[str, int]]  # (id, duration minutes)


class HotSpot(msgspec.Struct):
    """A handful of slots of one practitioner that the hotslot scenario fights for."""

    practice_id: str
    practitioner_id: str
    visit_types: list[str]
    starts: list[str]  # RFC 3339 with the practice's offset


class Dataset(msgspec.Struct):
    practices: list[PracticeData]
    first_date: str  # the first local date searches ask for (tomorrow at seeding time)
    search_days: int  # searches pick a date in [first_date, first_date + search_days)
    hot: HotSpot | None = None
    rules: list[PracticeData] = []  # the practice-rules scenario's practices (benchmarks/rules.py), when it runs


def hot_starts(practice: PracticeData, first: dt.date, count: int, step_minutes: int = 15) -> list[str]:
    """`count` consecutive starts from 09:00 on the first Monday to Friday on or after ``first``."""
    day = first + dt.timedelta(days=1)
    while day.weekday() > 4:
        day += dt.timedelta(days=1)
    tz = ZoneInfo(practice.timezone)
    base = dt.datetime(day.year, day.month, day.day, 9, 0, tzinfo=tz)
    return [(base + dt.timedelta(minutes=step_minutes * i)).isoformat() for i in range(count)]

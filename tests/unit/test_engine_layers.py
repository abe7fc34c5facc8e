"""The engine is the domain: nothing under engine/ imports the API, the persistence layer, Litestar or SQLAlchemy
(data flows down into it: the API hands it clients and the archive at construction, never a callback into itself);
and the availability caches of one search are sized by one setting, split in one place."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.lru import BytesLru
from engine.search_cache import DayEntry, SearchCache, cache_shares
from tests.support.imports import imported_modules

ROOT = Path(__file__).resolve().parents[2]
ABOVE_THE_ENGINE = ("api", "persistence", "benchmarks", "litestar", "sqlalchemy")


def test_nothing_under_engine_imports_the_layers_above_it() -> None:
    engine_files = sorted((ROOT / "engine").rglob("*.py"))
    assert len(engine_files) > 20
    offending = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in engine_files
        for line, name in imported_modules(path)
        if name.split(".")[0] in ABOVE_THE_ENGINE
    ]
    assert offending == []


@pytest.mark.parametrize("total", [0, 1, 3, 4, 7, 64 * 1024 * 1024 + 3])
def test_search_cache_bytes_is_split_between_the_two_caches_whole(total: int) -> None:
    days, rendered = cache_shares(total)
    assert days + rendered == total and 0 <= days <= rendered
    assert days == total // 4


def test_a_cache_of_capacity_0_keeps_nothing_and_evicts_nothing() -> None:
    cache = SearchCache(0)
    entry = DayEntry((1, 2, 3), (1, 2), 0, 0)
    cache.put(("r", "v", 0), entry)
    assert (len(cache), cache.bytes, cache.evictions) == (0, 0, 0)
    assert cache.get(("r", "v", 0)) is None and not cache.timely(("r", "v", 0), 0)


def test_a_value_larger_than_the_whole_map_is_not_kept_and_pushes_nothing_out() -> None:
    lru: BytesLru[str, str] = BytesLru(100)
    lru.put("a", "small", 60)
    lru.put("b", "huge", 101)
    assert (len(lru), lru.bytes, lru.evictions, lru.get("a"), lru.get("b")) == (1, 60, 0, "small", None)
    lru.put("a", "replaced by a huge one", 500)  # the outdated value goes all the same
    assert (len(lru), lru.bytes, lru.get("a")) == (0, 0, None)

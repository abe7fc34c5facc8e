"""Bounded availability answers through the API (issue 22, "Also seen": a 31-day anonymous search of a large
practice open round the clock was a 62 MiB answer). A 31-day search of a practice open round the clock, with four
practitioners and some slots held, crossing a DST change, is cut at SEARCH_MAX_SLOTS; following ``next`` (and the
``Link`` header) page by page gives exactly the unbounded answer, computed another way (the search script over
the whole range, rendered as the API renders), with nothing lost or repeated; each page revalidates (304) with its
own ETag. With the cache on and off, and with a bound below one day's slots (cut inside days) and above (whole
days)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from api import render
from tests.support.clock import Clock
from tests.support.config import WEEKDAYS

pytestmark = [pytest.mark.integration]
CACHE = 64 * 1024 * 1024
# 4 practitioners, 10-minute steps, 30-minute visits: 568 slots a day (less the held ones)
PRACTITIONERS = 4


@pytest.mark.parametrize("max_slots", [500, 1500], ids=["inside-days", "whole-days"])
@pytest.mark.parametrize("cache", [CACHE, 0], ids=["cache", "no-cache"])
def test_pages_together_are_the_unbounded_answer(
    make_client: Callable[..., TestClient[Any]], cache: int, max_slots: int
) -> None:
    c = make_client(search_cache_bytes=cache, search_max_slots=max_slots, audit_searches=False)
    eng = c.app.state.engine
    eng.rt.clock = Clock(dt.datetime(2027, 3, 14, 12, tzinfo=dt.UTC).timestamp())  # Paris springs forward 03-28
    pid = c.post("/v1/practices", json={"name": "Round the clock", "timezone": "Europe/Paris"}).json()["id"]
    prs = [c.post(f"/v1/practices/{pid}/practitioners", json={"name": f"Dr {i}"}).json()["id"] for i in range(4)]
    vt = c.post(f"/v1/practices/{pid}/visit-types", json={"name": "V", "duration_minutes": 30}).json()["id"]
    every_day = [{"day": d, "start": "00:00", "end": "24:00"} for d in WEEKDAYS]
    for pr in prs:
        body = {"weekly": every_day, "slot_step_minutes": 10, "horizon_days": 60}
        assert c.put(f"/v1/practitioners/{pr}/schedule", json=body).status_code == 200
    first = dt.date(2027, 3, 15)
    for k, pr in enumerate(prs):  # a few held slots, so that practitioners' days differ
        start = dt.datetime(2027, 3, 15 + 3 * k, 9, 0, tzinfo=dt.UTC).isoformat()
        assert c.post("/v1/holds", json={"practitioner_id": pr, "visit_type_id": vt, "start": start}).status_code == 201

    # the unbounded answer, another way: the search script over the whole range, rendered as the API renders it
    practice, found = c.blocking_portal.call(eng.search, pid, first, 31, vt)  # on the app's loop
    whole = msgspec.json.decode(render.availability_bytes(practice, vt, first, 31, found))["slots"]
    assert len(whole) > 31 * 500  # the practice is large: the bound cuts it

    path = f"/v1/practices/{pid}/availability"
    url: str | None = f"{path}?date={first.isoformat()}&days=31&visit_type_id={vt}"
    pages: list[dict[str, Any]] = []
    while url is not None:
        r = c.get(url)
        assert r.status_code == 200, r.text
        page = r.json()
        pages.append(page)
        assert len(page["slots"]) <= max_slots
        assert c.get(url, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
        if page["truncated"]:
            nxt = page["next"]
            assert nxt is not None and r.headers["link"].endswith('; rel="next"')
            # the Link header and the body name the same next page; the asked end stays 31 days after `first`
            assert dt.date.fromisoformat(nxt["date"]) + dt.timedelta(days=nxt["days"]) == first + dt.timedelta(days=31)
            link = r.headers["link"].split(";")[0].strip("<>")
            params = {"date": nxt["date"], "days": str(nxt["days"]), "visit_type_id": vt}
            if nxt["from"] is not None:
                params["from"] = nxt["from"]
            assert c.get(path, params=params).content == c.get(link).content
            # another page is another answer: this page's tag does not revalidate it
            assert c.get(link, headers={"If-None-Match": r.headers["etag"]}).status_code == 200
            url = link
        else:
            assert page["next"] is None and "link" not in r.headers
            url = None
        assert len(pages) < 200
    joined = [s for page in pages for s in page["slots"]]
    assert joined == whole  # nothing lost, nothing repeated, in order
    assert len(pages) >= 31 * 500 // max_slots
    if max_slots >= 568:  # a day fits: every page but the last ends with a whole day
        assert all(p["next"]["from"] is None for p in pages[:-1])
    else:
        assert any(p["next"]["from"] is not None for p in pages[:-1])


def test_a_bad_from_is_a_422(make_client: Callable[..., TestClient[Any]]) -> None:
    c = make_client()
    pid = c.post("/v1/practices", json={"name": "P", "timezone": "Europe/Paris"}).json()["id"]
    vt = c.post(f"/v1/practices/{pid}/visit-types", json={"name": "V", "duration_minutes": 30}).json()["id"]
    for bad in ("2027-03-15T09:00:00", "tomorrow", "1800000000"):
        r = c.get(f"/v1/practices/{pid}/availability", params={"date": "2027-03-15", "visit_type_id": vt, "from": bad})
        assert r.status_code == 422 and r.json()["code"] == "validation_error", (bad, r.text)


@pytest.mark.parametrize("cache", [CACHE, 0], ids=["cache", "no-cache"])
def test_a_practice_without_practitioners_tags_each_page_apart(
    make_client: Callable[..., TestClient[Any]], cache: int
) -> None:
    """The empty answer of a practice with no practitioner yet is a page too: asked from another instant, it is
    another answer, so one page's ETag does not revalidate the other."""
    c = make_client(search_cache_bytes=cache)
    pid = c.post("/v1/practices", json={"name": "Empty", "timezone": "Europe/Paris"}).json()["id"]
    vt = c.post(f"/v1/practices/{pid}/visit-types", json={"name": "V", "duration_minutes": 30}).json()["id"]
    url, params = f"/v1/practices/{pid}/availability", {"date": "2027-03-15", "days": "2", "visit_type_id": vt}
    whole = c.get(url, params=params)
    assert whole.status_code == 200 and whole.json()["slots"] == [] and whole.json()["truncated"] is False
    later = {**params, "from": "2027-03-15T12:00:00+01:00"}
    part = c.get(url, params=later)
    assert part.status_code == 200 and part.json()["slots"] == [] and part.json()["next"] is None
    assert c.get(url, params=later, headers={"If-None-Match": part.headers["etag"]}).status_code == 304
    assert c.get(url, params=later, headers={"If-None-Match": whole.headers["etag"]}).status_code == 200

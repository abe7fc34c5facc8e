"""Search: free slots of one visit type over a range of the practice's local dates, by one path.

Every search goes through the availability cache (engine/search_cache.py): ``SEARCH_CACHE_BYTES=0`` is a cache of
capacity 0 on the same path, whose every day is computed. A search reads the versions of the asked
practitioner-days in one round trip; when nothing it asks moved or ran out of time it is answered from the cache
and its audit event is queued in this process's next batch (``engine.search_audit``); otherwise one audited
script computes every asked day. While Redis is unreachable, days known right less than ``STALE_READ_SECONDS``
ago answer with ``stale`` set. ``search`` is the reference the cached answers are checked against: the script
alone, nothing read from or kept in the cache.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from engine import errors, ids, keys, limits, scripts, timeutil
from engine.catalog import Catalog
from engine.context import Runtime
from engine.model import SYSTEM, Ctx, Practice, VisitType
from engine.redis.batching import Coalescer
from engine.search_answer import Answer, SearchResult, answer_tag, bound_days, bound_packed, by_day, order
from engine.search_audit import REDIS_DOWN, SearchAudits
from engine.search_cache import DayEntry, SearchCache, buckets, cache_shares

T = TypeVar("T")
ROSTER_ATTEMPTS = 3  # reads of a practice's practitioners when the script finds the list outdated ('ROSTER')


class Search:
    def __init__(self, rt: Runtime, catalog: Catalog) -> None:
        self.rt = rt
        self.catalog = catalog
        # SEARCH_CACHE_BYTES sizes both caches of a search: the days' starts here, the API's rendered days
        days_bytes, self.rendered_bytes = cache_shares(rt.settings.search_cache_bytes)
        self.cache = SearchCache(days_bytes)
        self.audits = SearchAudits(rt)
        # the searches of this process that reach Redis in the same loop iteration share a round trip (on a
        # single Redis: a cluster's pipelines refuse EVALSHA, and its calls go to their slots' nodes one by one)
        self._send: Callable[[scripts.Call], Awaitable[Any]] | None = None
        self._versions_read: Callable[[tuple[str, list[str]]], Awaitable[Any]] = self._hmget
        if not rt.lua.cluster:
            self.script_batches: Coalescer[scripts.Call] = Coalescer(
                lambda c: self.rt.lua.run(c.script, c.keys, c.args), lambda cs: self.rt.lua.run_batch(cs)
            )
            self.version_batches: Coalescer[tuple[str, list[str]]] = Coalescer(self._hmget, self._hmget_many)
            self._send, self._versions_read = self.script_batches, self.version_batches
        if rt.reads is not None:  # the process's pipelined reads (engine/redis/pipelined.py) batch on their own
            self._versions_read = self._pipelined_hmget

    async def _hmget(self, read: tuple[str, list[str]]) -> Any:
        return await self.rt.redis.hmget(*read)

    async def _hmget_many(self, reads: list[tuple[str, list[str]]]) -> list[Any]:
        async with self.rt.redis.pipeline(transaction=False) as pipe:
            for key, fields in reads:
                pipe.hmget(key, fields)
            return list(await pipe.execute(raise_on_error=False))

    async def _pipelined_hmget(self, read: tuple[str, list[str]]) -> Any:
        return await self.rt.reads.call("HMGET", read[0], *read[1])  # type: ignore[union-attr]

    @property
    def audit_failures(self) -> int:
        """Audit events of cached answers that could not be appended (counted, never silent)."""
        return self.audits.failed

    async def search_availability(
        self,
        practice_id: str,
        date: dt.date,
        days: int,
        visit_type_id: str,
        practitioner_id: str | None = None,
        ctx: Ctx = SYSTEM,
        from_s: int | None = None,
    ) -> Answer:
        """The API's search (operation ``search_availability``): as ``answer``, with the audit event the script did
        not append in the same step (an answer from the cache) queued in this process's next batch."""
        self._check(practice_id, date, days)
        ans = await self._roster_retry(
            self._answer, practice_id, date, days, visit_type_id, practitioner_id, ctx, from_s
        )
        if ans.audit_call is not None:
            self.audits.add(ans.audit_call)
        return ans

    async def answer(
        self,
        practice_id: str,
        date: dt.date,
        days: int,
        visit_type_id: str,
        practitioner_id: str | None = None,
        ctx: Ctx = SYSTEM,
        from_s: int | None = None,
    ) -> Answer:
        """The answer through the availability cache, its audit event still to queue (``Answer.audit_call``): the
        free slots starting on the asked days, at or after ``from_s`` (epoch seconds) when given, cut after at most
        ``SEARCH_MAX_SLOTS`` (``Answer.next``: where the next page starts; search_answer.py ``cut_at``)."""
        self._check(practice_id, date, days)
        return await self._roster_retry(
            self._answer, practice_id, date, days, visit_type_id, practitioner_id, ctx, from_s
        )

    async def search(
        self,
        practice_id: str,
        date: dt.date,
        days: int,
        visit_type_id: str,
        practitioner_id: str | None = None,
        ctx: Ctx = SYSTEM,
    ) -> tuple[Practice, SearchResult]:
        """The reference answer: one script over the whole range, audited in the same step, nothing read from or
        kept in the cache (the tests of the cache compare every answer with it)."""
        self._check(practice_id, date, days)
        return await self._roster_retry(self._scripted, practice_id, date, days, visit_type_id, practitioner_id, ctx)

    @staticmethod
    async def _roster_retry(attempt: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``attempt(*args, 0)``, ``attempt(*args, 1)``, ...: again while the search script finds the practice's
        list of practitioners outdated ('ROSTER'; each attempt after the first reads it again)."""
        for n in range(ROSTER_ATTEMPTS):
            try:
                return await attempt(*args, n)
            except scripts.RosterChanged:
                continue
        raise AssertionError("unreachable: the last attempt does not check the roster")

    @staticmethod
    def _roster(prac_ids: list[str], practitioner_id: str | None, attempt: int) -> int | None:
        """The practitioner count the script checks (a search of the whole practice, before the last attempt)."""
        return len(prac_ids) if practitioner_id is None and attempt < ROSTER_ATTEMPTS - 1 else None

    async def _scripted(
        self,
        practice_id: str,
        date: dt.date,
        days: int,
        visit_type_id: str,
        practitioner_id: str | None,
        ctx: Ctx,
        attempt: int,
    ) -> tuple[Practice, SearchResult]:
        practice, vt, prac_ids = await self.catalog.search_context(
            practice_id, visit_type_id, practitioner_id, attempt > 0
        )
        lo, hi = self._range(practice, date, days)
        detail = self._detail(date, days, vt, practitioner_id)
        roster = self._roster(prac_ids, practitioner_id, attempt)
        local_days = self._day_bounds(practice, date, days)
        call = self._call(practice_id, prac_ids, vt, lo, hi, detail, True, ctx, roster=roster, local_days=local_days)
        found = await scripts.search(self.rt.lua, call, self._send)
        return practice, SearchResult(prac_ids, vt.duration_minutes * 60, order(found.starts, len(prac_ids)))

    async def _answer(
        self,
        practice_id: str,
        date: dt.date,
        days: int,
        visit_type_id: str,
        practitioner_id: str | None,
        ctx: Ctx,
        from_s: int | None,
        attempt: int,
    ) -> Answer:
        try:
            practice, vt, prac_ids = await self.catalog.search_context(
                practice_id, visit_type_id, practitioner_id, attempt > 0
            )
        except REDIS_DOWN:
            known = self.catalog.last_context(practice_id, visit_type_id, practitioner_id)
            if known is None:
                raise
            practice, vt, prac_ids = known
        day_bounds = self._day_bounds(practice, date, days)
        dur = vt.duration_minutes * 60
        detail = self._detail(date, days, vt, practitioner_id)
        roster = self._roster(prac_ids, practitioner_id, attempt)
        if not prac_ids:
            # No practitioner as this process knows the practice: nothing is cached for it and no version could
            # say one was added since, so the script answers (no slots): it checks the list is whole ('ROSTER':
            # read it again, the new practitioner searched at once) and audits the search in the same step.
            lo, hi = day_bounds[0][0], day_bounds[-1][1]
            call = self._call(practice_id, [], vt, lo, hi, detail, True, ctx, buckets(lo, hi, dur), roster=roster)
            await scripts.search(self.rt.lua, call, self._send)
            ans = self._bound_packed(practice, [], dur, [], day_bounds, from_s)
            ans.tag = answer_tag(practice, vt, [], date, days, practitioner_id, (), self._page(from_s))
            return ans
        if self.cache.all_timely(((pr, vt.id, lo) for pr in prac_ids for lo, _ in day_bounds), self.rt.now_ms()):
            # every asked day is here and still right by time: one read of their versions says whether any moved
            try:
                entries = await self._fresh(practice_id, prac_ids, vt, day_bounds)
            except REDIS_DOWN as e:
                return self._stale_answer(practice, prac_ids, vt, day_bounds, detail, ctx, e, from_s)
            if entries is not None:  # none moved: answered from the cache, its audit event appended later
                ans = self._cached_answer(practice, prac_ids, dur, day_bounds, entries, detail, ctx, from_s)
                ans.tag = self._tag(practice, vt, prac_ids, date, days, practitioner_id, entries, from_s)
                return ans
        elif self.cache.max_bytes:
            self.cache.misses += len(prac_ids) * days
        # One script computes every asked day and audits the search in the same step (one round trip: with a day
        # missing, reading versions first would make it two; with SEARCH_CACHE_BYTES=0, every search comes here).
        lo, hi = day_bounds[0][0], day_bounds[-1][1]
        first_b, last_b = buckets(lo, hi, dur)
        call = self._call(
            practice_id, prac_ids, vt, lo, hi, detail, True, ctx, (first_b, last_b), roster=roster,
            local_days=day_bounds,
        )  # fmt: skip
        try:
            found = await scripts.search(self.rt.lua, call, self._send)
        except REDIS_DOWN as e:
            return self._stale_answer(practice, prac_ids, vt, day_bounds, detail, ctx, e, from_s)
        if self.cache.max_bytes:  # kept day by day, and answered so: the renderer reuses the days it rendered
            versions = self._day_versions(found, first_b, day_bounds, dur)
            rows = self._keep(found, versions, prac_ids, vt, day_bounds)
            ans = Answer(practice, practitioner_ids=prac_ids, duration_s=dur)
            self._bound(ans, by_day(day_bounds, rows), from_s)
            # what the days' entries are made of, as a later hit's tag reads it from them (``_tag``)
            computed_from = ((day, meta[0]) for meta, per_day in zip(found.meta, versions) for day in per_day)
        else:  # a cache of capacity 0 keeps nothing: the script's slots answer whole, not cut into days, and with
            # no later hit to agree with, the tag is made of each practitioner's read over the whole range
            packed = order(found.starts, len(prac_ids))
            ans = self._bound_packed(practice, prac_ids, dur, packed, day_bounds, from_s)
            computed_from = ((tuple(meta[1:]), meta[0]) for meta in found.meta)
        ans.tag = answer_tag(practice, vt, prac_ids, date, days, practitioner_id, computed_from, self._page(from_s))
        return ans

    def _bound(self, ans: Answer, days: list[tuple[int, tuple[tuple[int, ...], ...]]], from_s: int | None) -> None:
        """Give ``ans`` the asked days' slots from ``from_s`` on, cut after at most SEARCH_MAX_SLOTS."""
        ans.days, ans.next, ans.partial = bound_days(days, from_s, self.rt.settings.search_max_slots)

    def _bound_packed(
        self,
        practice: Practice,
        prac_ids: list[str],
        dur: int,
        packed: list[int],
        day_bounds: list[tuple[int, int]],
        from_s: int | None,
    ) -> Answer:
        """An answer in one go (not cut into days): ``packed`` from ``from_s`` on, cut after at most
        SEARCH_MAX_SLOTS."""
        n = max(len(prac_ids), 1)
        kept, nxt = bound_packed(packed, n, day_bounds, from_s, self.rt.settings.search_max_slots)
        ans = Answer(practice, SearchResult(prac_ids, dur, kept))
        ans.next = nxt
        return ans

    def _page(self, from_s: int | None) -> tuple[int | None, int]:
        """What shapes an answer besides what it was computed from: the asked ``from`` and the bound (its tag)."""
        return from_s, self.rt.settings.search_max_slots

    def _tag(
        self,
        practice: Practice,
        vt: VisitType,
        prac_ids: list[str],
        date: dt.date,
        days: int,
        practitioner_id: str | None,
        rows: list[list[DayEntry]],
        from_s: int | None,
    ) -> str:
        computed_from = ((e.versions, e.valid_until_ms) for row in rows for e in row)
        return answer_tag(practice, vt, prac_ids, date, days, practitioner_id, computed_from, self._page(from_s))

    def _stale_answer(
        self,
        practice: Practice,
        prac_ids: list[str],
        vt: VisitType,
        day_bounds: list[tuple[int, int]],
        detail: dict[str, Any],
        ctx: Ctx,
        down: BaseException,
        from_s: int | None,
    ) -> Answer:
        """Redis is unreachable: the answer from days known right less than STALE_READ_SECONDS ago, or ``down``."""
        found = self._stale(prac_ids, vt, day_bounds)
        if found is None:
            raise down
        entries, age_s = found
        self.cache.stale_answers += 1
        dur = vt.duration_minutes * 60
        return self._cached_answer(practice, prac_ids, dur, day_bounds, entries, detail, ctx, from_s, age_s)

    def _cached_answer(
        self,
        practice: Practice,
        prac_ids: list[str],
        dur: int,
        day_bounds: list[tuple[int, int]],
        entries: list[list[DayEntry]],
        detail: dict[str, Any],
        ctx: Ctx,
        from_s: int | None,
        age_s: int | None = None,
    ) -> Answer:
        """An answer from cached days (``age_s``: stale), its audit event left to queue (``audit_call``)."""
        stale = age_s is not None
        source = "stale" if stale else "cache"
        ans = Answer(practice, None, stale, age_s or 0, None, None, prac_ids, dur)
        self._bound(ans, by_day(day_bounds, entries), from_s)
        if self.rt.settings.audit_searches:
            count = sum(len(starts) for _, day in ans.days or () for starts in day)
            call = self._call(practice.id, [], None, 0, 0, {**detail, "count": count, "source": source}, True, ctx)
            ans.audit_call = call
            ans.audit = lambda: self.audits.append_now(call)
        return ans

    # ----------------------------------------------------------------- the cache
    async def _fresh(
        self, pid: str, prac_ids: list[str], vt: VisitType, day_bounds: list[tuple[int, int]]
    ) -> list[list[DayEntry]] | None:
        """Per practitioner, per day: the cached entry, when every asked day is still right (its versions, read
        now, are the ones it was computed at); None when any moved or ran out of time (the script computes them
        all again and audits the search in the same step, so only answers made entirely from the cache are
        audited later)."""
        dur = vt.duration_minutes * 60
        first_b = buckets(*day_bounds[0], dur)[0]
        last_b = buckets(*day_bounds[-1], dur)[1]
        fields = ["all", *(str(b) for b in range(first_b, last_b + 1))]
        # one command: the versions hash is shared by the practice's practitioners (engine/keys.py)
        raw = await self._versions_read((keys.versions(pid, prac_ids[0]), fields))
        current = [int(v or 0) for v in raw]
        day_versions = [self._versions(current, first_b, lo, hi, dur) for lo, hi in day_bounds]
        now = self.rt.now_ms()
        out: list[list[DayEntry]] = []
        moved = False
        get = self.cache.get
        for pr in prac_ids:
            row: list[DayEntry] = []
            for d, (lo, _) in enumerate(day_bounds):
                entry = get((pr, vt.id, lo))
                if entry is not None and entry.fresh(day_versions[d], now):
                    self.cache.hits += 1
                    entry.read_at_ms = now  # known right at this instant (what a stale answer's Age counts from)
                else:
                    self.cache.misses += 1
                    moved = True
                row.append(entry)  # type: ignore[arg-type]  # unused when None or outdated (moved)
            out.append(row)
        return None if moved else out

    def _day_versions(
        self, found: scripts.Found, first_b: int, day_bounds: list[tuple[int, int]], dur: int
    ) -> list[list[tuple[int, ...]]]:
        """Per practitioner, each asked day's versions out of those the script read with its answer."""
        out: list[list[tuple[int, ...]]] = []
        read: list[int] | None = None
        for meta in found.meta:
            if meta[1:] != read:  # one hash per practice: the practitioners' reads are the same (engine/keys.py)
                read = meta[1:]
                per_day = [self._versions(read, first_b, lo, hi, dur) for lo, hi in day_bounds]
            out.append(per_day)
        return out

    def _keep(
        self,
        found: scripts.Found,
        versions: list[list[tuple[int, ...]]],
        prac_ids: list[str],
        vt: VisitType,
        day_bounds: list[tuple[int, int]],
    ) -> list[list[DayEntry]]:
        """The script's answer cut into practitioner-days (per practitioner, per day), each kept in the cache."""
        now = self.rt.now_ms()
        rows = []
        for pr, starts, meta, per_day in zip(prac_ids, found.starts, found.meta, versions):
            row, at = [], 0
            for (day_lo, day_hi), day_versions in zip(day_bounds, per_day):
                at = bisect_left(starts, day_lo, at)
                end = bisect_left(starts, day_hi, at)
                entry = DayEntry(tuple(starts[at:end]), day_versions, meta[0], now)  # ascending
                self.cache.put((pr, vt.id, day_lo), entry)
                row.append(entry)
                at = end
            rows.append(row)
        return rows

    @staticmethod
    def _versions(current: list[int], first_b: int, lo: int, hi: int, dur: int) -> tuple[int, ...]:
        """A day's versions out of a read that starts with 'all' and then covers buckets from ``first_b``."""
        b_lo, b_hi = buckets(lo, hi, dur)
        return (current[0], *current[1 + b_lo - first_b : 2 + b_hi - first_b])

    def _stale(
        self, prac_ids: list[str], vt: VisitType, day_bounds: list[tuple[int, int]]
    ) -> tuple[list[list[DayEntry]], int] | None:
        """Every asked day from the cache, if all are younger than STALE_READ_SECONDS (else None)."""
        limit_ms = self.rt.settings.stale_read_seconds * 1000
        now = self.rt.now_ms()
        out, oldest = [], now
        for pr in prac_ids:
            row = []
            for lo, _ in day_bounds:
                entry = self.cache.get((pr, vt.id, lo))
                if entry is None or now - entry.read_at_ms > limit_ms:
                    return None
                oldest = min(oldest, entry.read_at_ms)
                row.append(entry)
            out.append(row)
        return out, (now - oldest) // 1000

    # ----------------------------------------------------------------- shared
    @staticmethod
    def _check(practice_id: str, date: dt.date, days: int) -> None:
        if ids.practice_of(practice_id, "p") is None:
            raise errors.NotFoundError("practice", practice_id)
        if not limits.search_date_ok(date):
            first, last = limits.SEARCH_FIRST_DATE, limits.SEARCH_LAST_DATE
            raise errors.InvalidRequestError(f"date must lie between {first} and {last}")
        if not limits.search_days_ok(days):
            raise errors.InvalidRequestError(f"days must be {limits.MIN_SEARCH_DAYS} to {limits.MAX_SEARCH_DAYS}")

    @staticmethod
    def _day_bounds(practice: Practice, date: dt.date, days: int) -> list[tuple[int, int]]:
        tz = timeutil.zone(practice.timezone)
        return [timeutil.day_bounds(date + dt.timedelta(days=i), tz) for i in range(days)]

    @staticmethod
    def _range(practice: Practice, date: dt.date, days: int) -> tuple[int, int]:
        tz = timeutil.zone(practice.timezone)
        return timeutil.day_bounds(date, tz)[0], timeutil.day_bounds(date + dt.timedelta(days=days - 1), tz)[1]

    @staticmethod
    def _detail(date: dt.date, days: int, vt: VisitType, practitioner_id: str | None) -> dict[str, Any]:
        return {"date": date.isoformat(), "days": days, "visit_type_id": vt.id, "practitioner_id": practitioner_id}

    def _call(
        self,
        pid: str,
        prac_ids: list[str],
        vt: VisitType | None,
        lo: int,
        hi: int,
        detail: dict[str, Any],
        audit: bool,
        ctx: Ctx,
        bucket_range: tuple[int, int] = (0, -1),
        at: int | None = None,
        roster: int | None = None,
        local_days: list[tuple[int, int]] | None = None,
    ) -> scripts.Call:
        return scripts.search_call(
            now_ms=self.rt.now_ms() if at is None else at,
            practice_id=pid,
            practitioner_ids=prac_ids,
            visit_type_id=vt.id if vt else "",
            start=lo,
            end=hi,
            duration_s=vt.duration_minutes * 60 if vt else 0,
            detail=detail,
            audit=audit and self.rt.settings.audit_searches,
            ctx=ctx,
            buckets=bucket_range,
            roster=roster,
            days=local_days or (),
        )

"""The waitlist kit's layout, as Python sends it (engine/scripts/waitlist.py kit_keys, kit_args) and as the Lua
reads it (lua/_prelude.lua wl_kit, wl_kit_argc): on the real Redis, every field of the kit and of each other
practitioner's part lands where the script reads it, with 0 to 3 other practitioners."""

from __future__ import annotations

import json

import pytest
import redis as redis_sync

from engine import ids, keys
from engine.scripts import registry
from engine.scripts.waitlist import OfferKit, kit_args, kit_keys

pytestmark = pytest.mark.integration

# wl_kit reads the schedule hashes and HLEN of the visit types, and returns early unless entries wait
PROBE = """
redis.call('ZADD', KEYS[1], 1, 'e')
local kit = wl_kit(1, 1)
local out = {argc = wl_kit_argc(1), pr = kit.pr, ctypes = kit.ctypes, ids = kit.ids, keys = kit.keys,
  base = kit.base, others = {}}
for _, o in ipairs(kit.others) do
  out.others[#out.others + 1] = {pr = o.pr, schedule = o.schedule, claims = o.claims, versions = o.versions,
    base = o.base, ids = o.ids, keys = o.keys, ctypes = o.ctypes, queue = o.queue, used = o.used}
end
redis.call('DEL', KEYS[1])
return cjson.encode(out)
"""


@pytest.mark.parametrize("n_others", [0, 1, 2, 3])
def test_the_kit_is_read_where_it_is_written(redis_db: str, n_others: int) -> None:
    pid = ids.new_practice_id()
    prs = [ids.new_practitioner_id(pid) for _ in range(n_others + 1)]
    vts = (("v1", 1800), ("v2", 900))
    others = tuple((o, tuple(ids.new_hold_id(o) for _ in range(i + 1))) for i, o in enumerate(prs[1:]))
    kit = OfferKit(prs[0], vts, (ids.new_hold_id(prs[0]),), 1000, 2000, ((0, 3600),), others)
    k, a = kit_keys(pid, kit), kit_args(pid, kit)
    r = redis_sync.Redis.from_url(redis_db)
    try:
        got = json.loads(r.eval(registry.compose(PROBE), len(k), *k, *a))
    finally:
        r.close()
    assert got["argc"] == len(a)
    assert got["pr"] == prs[0] and got["ids"] == list(kit.hold_ids) and got["ctypes"] == keys.claim_types(pid, prs[0])
    assert got["base"] == {vt: keys.base(pid, prs[0], vt) for vt, _ in vts}
    assert len(got["others"]) == n_others
    for (o, hold_ids), part in zip(others, got["others"], strict=True):
        assert part["pr"] == o and part["used"] == 0
        assert part["schedule"] == keys.schedule(pid, o) and part["claims"] == keys.claims(pid, o)
        assert part["versions"] == keys.versions(pid, o) and part["ctypes"] == keys.claim_types(pid, o)
        assert part["base"] == {vt: keys.base(pid, o, vt) for vt, _ in vts}
        assert part["ids"] == list(hold_ids) and part["keys"] == [keys.hold(pid, h) for h in hold_ids]
        assert part["queue"] == keys.waitlist_queue(pid)  # the practice's keys are shared

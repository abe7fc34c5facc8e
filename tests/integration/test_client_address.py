"""Who a public client is for the abuse limits (issue 22, "also seen"): behind an appending proxy header
(X-Forwarded-For) the value the trusted proxy added, counted ``BOOKING_TRUSTED_HOPS`` from the right, never a value
the client wrote itself; and an IPv6 client as its /64, the prefix one subscriber holds."""

from __future__ import annotations

import random
from typing import Any

import pytest

from api.auth import address_group, forwarded_client
from engine.settings import ConfigError, Settings
from tests.support.http import next_weekday, search, setup_practice

XFF = "X-Forwarded-For"


def test_the_trusted_proxys_value_counts_from_the_right() -> None:
    sent = ["spoofed-by-client, 198.51.100.7"]  # the client wrote the first, the proxy appended the second
    assert forwarded_client(sent, 1) == "198.51.100.7"
    two = ["forged, 203.0.113.9, 10.0.0.2"]  # outer proxy appended 203.0.113.9, inner proxy 10.0.0.2
    assert forwarded_client(two, 2) == "203.0.113.9"
    assert forwarded_client(["a, b", "c"], 1) == "c"  # several header lines are one list, in order
    assert forwarded_client(["only"], 3) == "only"  # fewer values than hops: the leftmost, a trusted proxy's
    assert forwarded_client([" , "], 1) is None and forwarded_client([], 1) is None
    assert Settings.from_env({"BOOKING_TRUSTED_HOPS": "2"}).trusted_hops == 2
    assert Settings.from_env({}).trusted_hops == 1
    with pytest.raises(ConfigError):
        Settings.from_env({"BOOKING_TRUSTED_HOPS": "0"})


def test_ipv6_clients_are_grouped_by_their_64() -> None:
    assert address_group("2001:db8:1:2:aaaa::1") == address_group("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert address_group("2001:db8:1:3::1") != address_group("2001:db8:1:2::1")
    assert address_group("[2001:db8:1:2::5]:443") == "2001:db8:1:2::/64"
    assert address_group("::ffff:192.0.2.1") == "192.0.2.1" == address_group("192.0.2.1:5050")
    assert address_group("198.51.100.7") == "198.51.100.7" and address_group("198.51.100.8") == "198.51.100.8"
    assert address_group("_hidden") == "_hidden"


@pytest.mark.integration
def test_spoofed_values_and_one_64_share_a_clients_limits(make_client: Any) -> None:
    c = make_client(client_header=XFF, limit_live_holds=2, limit_holds_per_minute=100)
    ctx = setup_practice(c, durations=(15,), practitioners=1)
    slots = iter(search(c, ctx["practice_id"], ctx["visit_types"][15], next_weekday(2)))
    rng = random.Random()
    v4 = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"  # a client of this run alone
    prefix = f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}"

    def hold(forwarded: str) -> int:
        body = {"practitioner_id": ctx["practitioners"][0], "visit_type_id": ctx["visit_types"][15],
                "start": next(slots)["start"]}  # fmt: skip
        return int(c.post("/v1/holds", json=body, headers={"Authorization": "", XFF: forwarded}).status_code)

    # one client writing a new value in front of the proxy's each time: still one client
    assert [hold(f"spoof-{i}, {v4}") for i in range(3)] == [201, 201, 429]
    # one IPv6 subscriber taking a new address of its /64 each time: one client; another /64 is another
    assert [hold(f"{prefix}::{i + 1:x}") for i in range(3)] == [201, 201, 429]
    assert hold(f"{prefix[:-1]}{(int(prefix[-1], 16) + 1) % 16:x}::1") == 201

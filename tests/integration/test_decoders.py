"""Property tests of the request decoders: any input decodes to a valid request or is refused cleanly."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from api.app import create_app
from api.schemas import BookIn, CancelIn, HoldIn, PracticeIn, PractitionerIn, RescheduleIn, VisitTypeIn
from engine.model import Schedule
from tests.support.config import settings_for

DECODED = [HoldIn, BookIn, CancelIn, PracticeIn, PractitionerIn, RescheduleIn, VisitTypeIn, Schedule]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


def _near_valid(kind: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the right field names and arbitrary values: the interesting neighbourhood."""
    fields = [f.name for f in msgspec.structs.fields(kind)]
    return st.fixed_dictionaries({}, optional={f: json_values for f in fields})


@pytest.mark.parametrize("kind", DECODED, ids=lambda k: k.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_decoders_accept_or_refuse_cleanly(kind: type[Any], data: st.DataObject) -> None:
    raw = data.draw(st.one_of(json_values, _near_valid(kind)).map(json.dumps).map(str.encode) | st.binary(max_size=60))
    try:
        value = msgspec.json.decode(raw, type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    # whatever decodes is a complete, re-encodable request of that type
    assert isinstance(value, kind)
    assert msgspec.json.decode(msgspec.json.encode(value), type=kind) == value


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=st.none()))
def test_naive_instants_are_always_refused(naive: dt.datetime) -> None:
    body = {"practitioner_id": "x", "visit_type_id": "y", "start": naive.isoformat()}
    with pytest.raises(msgspec.ValidationError, match="timezone"):
        msgspec.json.decode(json.dumps(body), type=HoldIn)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=st.timezones()).filter(lambda d: d.utcoffset().total_seconds() % 60 == 0))
def test_aware_instants_keep_their_instant(aware: dt.datetime) -> None:
    # (RFC 3339 offsets are whole minutes: old local mean times like +00:09:21 are refused, rightly)
    body = {"practitioner_id": "x", "visit_type_id": "y", "start": aware.isoformat()}
    got = msgspec.json.decode(json.dumps(body), type=HoldIn).start
    assert got.replace(tzinfo=None) == aware.replace(tzinfo=None) and got.utcoffset() == aware.utcoffset()


@settings(max_examples=200, deadline=None)
@given(st.integers(-10, 2000), st.integers(-10, 300), st.integers(-10, 800), st.integers(-5, 10_000))
def test_schedule_numbers_are_range_checked(step: int, horizon: int, notice: int, extra: int) -> None:
    body = {"weekly": [], "slot_step_minutes": step, "horizon_days": horizon, "min_notice_minutes": notice}
    ok = 1 <= step <= 240 and 1 <= horizon <= 730 and notice >= 0
    try:
        msgspec.json.decode(json.dumps(body), type=Schedule)
        assert ok
    except msgspec.ValidationError:
        assert not ok


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=st.binary(max_size=200) | json_values.map(json.dumps).map(str.encode))
def test_the_api_never_answers_5xx_to_arbitrary_bodies(tmp_path_factory: Any, body: bytes) -> None:
    global _CLIENT
    if _CLIENT is None:
        app = create_app(settings_for(None, data_dir=str(tmp_path_factory.mktemp("fuzz"))), background=False)
        _CLIENT = TestClient(app)
        _CLIENT.__enter__()
    for path in ("/v1/practices", "/v1/holds", "/v1/appointments", "/v1/appointments/x.ax/cancel"):
        r = _CLIENT.post(path, content=body, headers={"content-type": "application/json"})
        assert r.status_code < 500, (path, body, r.text)


_CLIENT: Any = None


def teardown_module() -> None:
    if _CLIENT is not None:
        _CLIENT.__exit__(None, None, None)

"""A client generated from /schema/openapi.json by openapi-python-client, with its default settings and no hand
edits, runs the whole funnel (issue 21 item 4): the admin sets a practice up (bearer token), the public searches,
holds and books (Idempotency-Key, replayed), the patient reads, reschedules and cancels with the manage token, and
joins the waitlist. The generated code sends every request itself: only its transport is the app in process."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from litestar.testing import TestClient
from litestar.testing import transport as litestar_transport

from tests.support.config import ADMIN
from tests.support.http import next_weekday

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
PACKAGE = "booking_engine_client"  # what the generator names it, from the document's title


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], ModuleType]]:
    """Generate the client package from the served document (default settings: no --config) and import it."""
    from api.app import create_app
    from tests.support.config import settings_for

    work = tmp_path_factory.mktemp("generated")
    with TestClient(create_app(settings_for(None), background=False)) as c:
        (work / "openapi.json").write_text(c.get("/schema/openapi.json").text)
    tool = shutil.which("openapi-python-client", path=os.path.dirname(sys.executable))
    assert tool, "openapi-python-client is not installed (the test extra)"
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    run = subprocess.run(
        [tool, "generate", "--path", str(work / "openapi.json"), "--output-path", str(work / "out")],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr  # nothing skipped or left out
    sys.path.insert(0, str(work / "out"))
    try:
        yield lambda name: importlib.import_module(f"{PACKAGE}.{name}")
    finally:
        sys.path.remove(str(work / "out"))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_a_generated_client_runs_the_funnel(
    generated: Callable[[str], ModuleType], make_client: Callable[..., TestClient[Any]]
) -> None:
    tc = make_client()  # the app in process, on the real Redis and PostgreSQL
    models = generated("models")
    client_mod = generated("client")
    transport = {"transport": litestar_transport.TestClientTransport(client=tc)}
    base = "http://testserver.local"
    admin = client_mod.AuthenticatedClient(base_url=base, token=ADMIN, httpx_args=transport)
    public = client_mod.Client(base_url=base, httpx_args=transport)

    def call(module: str, client: Any, *args: Any, status: int = 200, **kwargs: Any) -> Any:
        op = importlib.import_module(f"{PACKAGE}.api.{module}")
        r = op.sync_detailed(*args, client=client, **kwargs)
        assert r.status_code == status, (module, r.status_code, r.content)
        return r

    # setup, as the admin: the bearer token goes through the generated AuthenticatedClient
    no_token = call("setup.create_practice", public, status=401,
                    body=models.PracticeIn(name="Generated", timezone=models.PracticeInTimezone.EUROPEPARIS))  # fmt: skip
    assert isinstance(no_token.parsed, models.Problem) and no_token.parsed.code == models.ProblemCode.UNAUTHORIZED
    practice = call("setup.create_practice", admin, status=201,
                    body=models.PracticeIn(name="Generated", timezone=models.PracticeInTimezone.EUROPEPARIS)).parsed  # fmt: skip
    assert practice.timezone == "Europe/Paris"
    doc = call(
        "setup.add_practitioner", admin, practice.id, status=201, body=models.PractitionerIn(name="Dr Gen")
    ).parsed
    visit = call("setup.add_visit_type", admin, practice.id, status=201,
                 body=models.VisitTypeIn(name="Consult", duration_minutes=30)).parsed  # fmt: skip
    weekly = [models.WeeklyWindow(day=models.WeeklyWindowDay(d), start="09:00", end="12:00")
              for d in ("mon", "tue", "wed", "thu", "fri")]  # fmt: skip
    call(
        "setup.put_schedule", admin, doc.id, body=models.Schedule(weekly=weekly, slot_step_minutes=30, horizon_days=30)
    )

    # the public: search, hold, book (Idempotency-Key), as a patient app would
    day = next_weekday(3)
    found = call("search.search_availability", public, practice.id, date=day, visit_type_id=visit.id).parsed
    assert isinstance(found, models.AvailabilityOut) and len(found.slots) == 6
    first, later = found.slots[0], found.slots[3]
    assert isinstance(first.start, dt.datetime) and first.start.utcoffset() is not None  # format: date-time
    hold = call("holds.hold", public, status=201, body=models.HoldIn(
        practitioner_id=first.practitioner_id, visit_type_id=visit.id, start=first.start)).parsed  # fmt: skip
    assert hold.start == first.start
    key = str(uuid.uuid4())
    book_in = models.BookIn(hold_id=hold.id, patient=models.PatientIn(name="Ada Gen", email="ada@example.org"))
    booked = call("appointments.book", public, status=201, body=book_in, idempotency_key=key)
    appt = booked.parsed
    again = call("appointments.book", public, status=201, body=book_in, idempotency_key=key)
    assert again.headers.get("Idempotent-Replayed") == "true" and again.parsed.id == appt.id
    assert booked.headers["Location"] == f"/v1/appointments/{appt.id}"
    assert appt.status == models.AppointmentOutStatus.BOOKED and appt.manage_token

    # the patient: read, reschedule and cancel with the manage token (the generated AuthenticatedClient)
    denied = call("appointments.get_appointment", public, appt.id, status=401)
    assert denied.parsed.code == models.ProblemCode.UNAUTHORIZED
    for module in ("appointments.get_appointment", "appointments.reschedule", "appointments.cancel"):
        op = importlib.import_module(f"{PACKAGE}.api.{module}")  # a credential is stated: the generated code asks
        wanted = inspect.signature(op.sync_detailed).parameters["client"].annotation  # for one
        assert wanted in (client_mod.AuthenticatedClient, "AuthenticatedClient"), (module, wanted)
    patient = client_mod.AuthenticatedClient(  # the document's manageToken scheme: an apiKey header, no prefix
        base_url=base, token=appt.manage_token, prefix="", auth_header_name="X-Manage-Token", httpx_args=transport
    )
    read = call("appointments.get_appointment", patient, appt.id).parsed
    assert (read.id, read.start, read.version) == (appt.id, first.start, 1)
    move = call("holds.hold", public, status=201, body=models.HoldIn(
        practitioner_id=later.practitioner_id, visit_type_id=visit.id, start=later.start)).parsed  # fmt: skip
    moved = call("appointments.reschedule", patient, appt.id, body=models.RescheduleIn(hold_id=move.id)).parsed
    assert (moved.start, moved.version) == (later.start, 2)
    cancelled = call("appointments.cancel", patient, appt.id, body=models.CancelIn(reason="generated")).parsed
    assert cancelled.status == models.AppointmentOutStatus.CANCELLED
    starts = [s.start for s in call("search.search_availability", public, practice.id, date=day,
                                    visit_type_id=visit.id).parsed.slots]  # fmt: skip
    assert first.start in starts and later.start in starts  # both intervals offered again

    # and the waitlist: the public joins, the patient reads the entry with its own token
    entry = call("waitlist.join_waitlist", public, practice.id, status=201, body=models.WaitlistIn(
        visit_type_id=visit.id, from_date=day, to_date=day + dt.timedelta(days=2),
        patient=models.PatientIn(name="Ada Gen", email="ada@example.org"))).parsed  # fmt: skip
    assert entry.status == models.WaitlistEntryOutStatus.WAITING and entry.manage_token
    holder = client_mod.AuthenticatedClient(
        base_url=base, token=entry.manage_token, prefix="", auth_header_name="X-Manage-Token", httpx_args=transport
    )
    mine = call("waitlist.get_waitlist_entry", holder, entry.id)
    assert mine.parsed.id == entry.id
    # what went over the wire was the generated models' JSON: the appointment as the API stores it
    stored = json.loads(tc.get(f"/v1/appointments/{appt.id}").text)
    assert stored["status"] == "cancelled" and stored["version"] == 3 and stored["patient"]["name"] == "Ada Gen"

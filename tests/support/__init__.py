"""Harnesses and helpers shared by the tests; the fixtures that use them live in tests/conftest.py.

- ``config``: where the test Redis and PostgreSQL are, the admin token, Settings for an app under test
- ``databases``: fresh PostgreSQL databases, one-line queries, Redis clients that close themselves
- ``http``: a practice set up over the HTTP API, searches, dates
- ``processes``: every process a test starts: its own process group, stopped with that group, checked at the
  end of the session (nothing may outlive the run)
- ``servers``: `booking serve`, `booking persister`, the CLI, a redis-server and a PostgreSQL cluster of a
  test's own, polling with deadlines
- ``faults``: the patient-app load and the stored-exactly-once checks of tests/system/test_faults.py
- ``smtp``: a real SMTP server that records every message
"""

"""Limits the engine enforces and the API's schema states (one definition each)."""

from __future__ import annotations

MIN_VISIT_MINUTES = 5
MAX_VISIT_MINUTES = 480  # the Lua overlap look-ups rely on it (MAX_DURATION_S, put in front of every script)
MAX_DURATION_S = MAX_VISIT_MINUTES * 60
MAX_SEARCH_DAYS = 31

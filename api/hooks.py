"""Litestar app-init hooks shared by every app this project serves: the API (api/app.py) and the benchmark's
floor and comparator (benchmarks/). A module of its own, importing nothing heavy, so that the floor, the bare
HTTP stack it measures, does not load the engine to share it."""

from __future__ import annotations

from litestar.config.app import AppConfig


def quiet_logging(config: AppConfig) -> AppConfig:
    """Litestar sets up no logging of its own: the server (granian or uvicorn) and `booking` (api/cli.py) do."""
    config.logging_config = None
    return config

"""Prometheus metrics of one API process: requests by route and status, latency histograms."""

from __future__ import annotations

import time
import uuid
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "booking_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "booking_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.domain = Counter(
            "booking_operations_total",
            "Booking operations by outcome",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.holds_expired = Counter(
            "booking_holds_expired_total", "Holds tidied by the sweeper", registry=self.registry
        )
        self.gauges: dict[str, Gauge] = {}

    def gauge(self, name: str, doc: str) -> Gauge:
        if name not in self.gauges:
            self.gauges[name] = Gauge(name, doc, registry=self.registry)
        return self.gauges[name]

    def labelled_gauge(self, name: str, doc: str, labels: list[str]) -> Gauge:
        if name not in self.gauges:
            self.gauges[name] = Gauge(name, doc, labels, registry=self.registry)
        return self.gauges[name]

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id" and 0 < len(value) <= 64 and value.isascii():
            return value.decode()
    return uuid.uuid4().hex


def metrics_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        metrics: Metrics = scope["app"].state.metrics
        started = time.perf_counter()
        status = {"code": 500}
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        finally:
            route: Any = scope.get("path_template") or "unmatched"
            metrics.requests.labels(scope.get("method", ""), route, str(status["code"])).inc()
            metrics.latency.labels(scope.get("method", ""), route).observe(time.perf_counter() - started)

    return middleware

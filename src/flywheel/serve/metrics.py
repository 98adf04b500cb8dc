"""Prometheus metrics of one app (its own CollectorRegistry, so several apps never collide)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """Request counts and latencies per route, program calls per outcome, requests in flight."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "flywheel_http_requests",
            "HTTP requests by route and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "flywheel_http_request_duration_seconds",
            "HTTP request latency.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("flywheel_http_requests_in_flight", "Requests being handled.", registry=self.registry)
        self.program_calls = Counter(
            "flywheel_program_calls",
            "Program calls by program and outcome.",
            ("program", "outcome"),
            registry=self.registry,
        )
        self.program_latency = Histogram(
            "flywheel_program_call_duration_seconds",
            "Program call latency.",
            ("program",),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.feedback = Counter(
            "flywheel_feedback", "Feedback received by rating.", ("rating",), registry=self.registry
        )
        self.lm_circuit = Gauge(
            "flywheel_lm_circuit_state",
            "LM endpoint circuit breaker: 0 closed, 1 half-open, 2 open (calls refused with 503).",
            registry=self.registry,
        )
        self.lm_circuit_opened = Counter(
            "flywheel_lm_circuit_opened", "Times the LM circuit breaker opened.", registry=self.registry
        )
        self.lm_circuit_refused = Counter(
            "flywheel_lm_circuit_refused",
            "Program calls refused while the LM circuit breaker was open.",
            registry=self.registry,
        )
        self.refused = Counter(
            "flywheel_requests_refused",
            "Requests refused by the abuse limits, by reason (rate, concurrency, body_size).",
            ("reason",),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

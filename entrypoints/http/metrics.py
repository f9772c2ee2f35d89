"""The API's Prometheus metrics: requests, latencies, holds, refusals, operations' gauges."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DUE_WARNING_DAYS = 7  # /metrics counts the rights requests due within a week (P1)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "giftcards_http_requests", "HTTP requests", ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "giftcards_http_request_seconds", "HTTP request latency", ["route"],
            registry=self.registry,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5),
        )
        self.holds = Counter(
            "giftcards_holds", "hold operations accepted", ["operation"], registry=self.registry
        )
        self.refusals = Counter(
            "giftcards_refusals", "refusals by stable code", ["code"], registry=self.registry
        )
        self.requests_overdue = Gauge(
            "giftcards_gdpr_requests_overdue", "open rights requests past their due date (P1)",
            registry=self.registry,
        )
        self.requests_due = Gauge(
            "giftcards_gdpr_requests_due_within_days",
            f"open rights requests due within {DUE_WARNING_DAYS} days, late ones included (P1)",
            registry=self.registry,
        )
        self.relay_stopped = Gauge(
            "giftcards_relay_stopped", "1: the relay stopped, Kafka's committed position read "
            "below the one the broker confirmed, or a forged chain link met (see status)",
            ["relay"], registry=self.registry,
        )
        self.clock_offset = Gauge(
            "giftcards_clock_offset_seconds", "this host's clock minus the database's, as last "
            "measured (past GIFTCARDS_MAX_CLOCK_SKEW_SECONDS: no lease, no event)",
            registry=self.registry,
        )
        self.batches = Histogram(
            "giftcards_commit_batch_commands", "commands saved per transaction (group commit)",
            registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
        )

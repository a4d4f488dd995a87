"""Prometheus metrics of a scan: a text file for node_exporter's textfile collector (written
atomically every interval and at exit), or an HTTP endpoint, via `prometheus_client`.

Names are `cos_scanner_*`; every series carries the target. The values are read from the
run's live counters (`pipeline.Progress`, the audit budget) and, at the end, from the store.
`cos_scanner_last_success_timestamp_seconds` is what an alert on "the nightly did not succeed"
watches.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Gauge, start_http_server, write_to_textfile

from scanner.models import ScanStatus
from scanner.scan.progress import Progress

_GAUGES = {
    "objects_listed": "objects listed in this run",
    "objects_audited": "images audited in this run (a verdict recorded)",
    "objects_flagged": "images with Result 1 in this run",
    "objects_review": "images with Result 2 in this run",
    "objects_skipped": "objects skipped in this run (not images, filters, unchanged)",
    "objects_retrying": "per-image failures waiting for another attempt",
    "objects_shared": "images audited without paying in this run (copies, another scan's keys)",
    "billed_units": "units billed in this run (images x scenes); absent when scenes are unknown",
    "saved_units": "units not billed in this run thanks to shared verdicts (images x scenes)",
    "maybe_billed_twice": "images possibly billed twice (resent after a lost answer)",
    "requests_in_flight": "audit requests on the wire now",
    "qps_budget": "the audit budget's current requests per second",
    "throttled_total": "throttling answers in this run",
    "retries_total": "retried requests in this run (throttling included)",
    "limiter_wait_seconds_total": "seconds audit requests waited for their turn",
    "scan_start_timestamp_seconds": "when this run started (unix time)",
    "scan_end_timestamp_seconds": "when this run ended (unix time)",
    "last_success_timestamp_seconds": "when a scan of this target last ended done",
}


class ScanMetrics:
    """The gauges of one scan run of one target."""

    def __init__(self, target: str, scenes: int | None) -> None:
        self.registry = CollectorRegistry()
        self._target = target
        self._scenes = scenes
        self._gauges = {
            name: Gauge(f"cos_scanner_{name}", doc, ["target"], registry=self.registry)
            for name, doc in _GAUGES.items()
        }
        self._failed = Gauge(
            "cos_scanner_objects_failed",
            "images failed in this run, by reason",
            ["target", "reason"],
            registry=self.registry,
        )
        self._requests = Gauge(
            "cos_scanner_requests",
            "audit requests answered in this run, by outcome",
            ["target", "outcome"],
            registry=self.registry,
        )
        self.set("scan_start_timestamp_seconds", time.time())
        self.retries = 0

    def set(self, name: str, value: float) -> None:
        self._gauges[name].labels(self._target).set(value)

    def update(self, p: Progress) -> None:
        """Take the live counters of the run."""
        for name, value in (
            ("objects_listed", p.listed),
            ("objects_audited", p.audited),
            ("objects_flagged", p.flagged),
            ("objects_review", p.review),
            ("objects_shared", p.shared),
            ("objects_skipped", p.skipped),
            ("objects_retrying", p.retrying),
            ("maybe_billed_twice", p.maybe_double),
            ("retries_total", self.retries),
        ):
            self.set(name, value)
        if self._scenes is not None:
            self.set("billed_units", (p.audited - p.shared) * self._scenes)
            self.set("saved_units", p.shared * self._scenes)
        self._set_failed(p.failures)
        self._requests.labels(self._target, "answered").set(p.requests)
        if p.budget is not None:
            self.set("requests_in_flight", p.budget.in_flight)
            self.set("qps_budget", p.budget.rate.rate)
            self.set("throttled_total", p.budget.rate.throttled)
            self.set("limiter_wait_seconds_total", p.budget.rate.waited)
            self._requests.labels(self._target, "throttled").set(p.budget.rate.throttled)

    def _set_failed(self, failures: Mapping[str, int]) -> None:
        for reason, n in failures.items():
            self._failed.labels(self._target, reason or "unknown").set(n)

    def finish(self, status: ScanStatus, outcome: str, failures: Mapping[str, int]) -> None:
        """The run's end, from the store: final failures by reason, the end time, and the
        last success when it ended done."""
        now = time.time()
        self.set("scan_end_timestamp_seconds", now)
        self.set("maybe_billed_twice", status.maybe_double)
        self._set_failed(failures)
        if outcome in ("done", "nothing"):
            self.set("last_success_timestamp_seconds", status.finished_at or now)

    def write(self, path: str) -> None:
        """Atomically (a temporary file renamed over the old one)."""
        write_to_textfile(path, self.registry)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

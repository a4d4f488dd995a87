"""Prometheus metrics of a target: a text file for node_exporter's textfile collector (written
atomically every interval and at exit, also when the run fails), or an HTTP endpoint, via
`prometheus_client`.

Names are `cos_scanner_*`; every series carries the target. Counters are cumulative over the
store's life (summed from the store's scans, so they survive runs and `rate()` works) and
typed counter; gauges are never named `_total`. Every file carries
`cos_scanner_last_success_timestamp_seconds` (0 when the target never had a done scan, so
"no success for 26 h" fires from the start), how the last ended run ended
(`cos_scanner_last_run_exit_code`, `cos_scanner_last_run_end_timestamp_seconds`), the review
queue, billed units and spend. The live gauges of the run (requests in flight, the QPS budget,
throttling) come from its own counters.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    push_to_gateway,
    start_http_server,
    write_to_textfile,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from scanner.config import AuditSettings
from scanner.scan.progress import Progress

#: Counters from the store: metric name (before `_total`) -> (the total's name, help).
COUNTERS = {
    "objects_listed": ("listed", "objects listed by the target's scans"),
    "images_audited": ("audited", "images given a verdict (audited, or shared from a copy)"),
    "images_flagged": ("flagged", "images judged Result 1 (sensitive)"),
    "images_review": ("review", "images judged Result 2 (suspicious: a person should look)"),
    "images_failed": ("failed", "image failures recorded (each attempt that ended failed)"),
    "objects_skipped": ("skipped", "objects skipped (not images, filters, unchanged)"),
    "images_shared": ("shared", "images given a verdict without paying (copies, other scans)"),
    "images_billed": ("billed", "images the service billed"),
    "maybe_billed_twice": ("maybe_double", "images possibly billed twice (a lost answer resent)"),
    "audit_requests": ("requests", "audit requests answered"),
}
#: The run's live gauges.
GAUGES = {
    "requests_in_flight": "audit requests on the wire now",
    "qps_budget": "the audit budget's current requests per second",
    "run_throttled": "throttling answers in this run",
    "run_retries": "retried requests in this run (throttling included)",
    "run_limiter_wait_seconds": "seconds this run's audit requests waited for their turn",
    "run_retrying": "per-image failures waiting for another attempt in this run",
    "jobs_running": "moderation jobs (videos, voice, documents) submitted and not final",
    "run_start_timestamp_seconds": "when this run started (unix time)",
}


class _FromStore(Collector):
    """The store's figures of one target, as of the last `refresh`."""

    def __init__(self, target: str, audit: AuditSettings | None) -> None:
        self.target = target
        self.audit = audit
        self.totals: dict[str, Any] = {}
        self.run_end: tuple[int, float] | None = None  # this run's (exit code, end), once over

    def collect(self) -> Iterator[Metric]:
        t = self.totals
        if not t:
            return
        label = [self.target]
        for name, (total, doc) in COUNTERS.items():
            family = CounterMetricFamily(f"cos_scanner_{name}", doc, labels=["target"])
            family.add_metric(label, t[total])
            yield family
        scenes = self.audit.scenes_per_image if self.audit is not None else None
        if scenes is not None:
            units = CounterMetricFamily("cos_scanner_billed_units", "units billed (images x "
                                        "scenes)", labels=["target"])  # fmt: skip
            units.add_metric(label, t["billed"] * scenes)
            yield units
            if self.audit is not None and self.audit.unit_price:
                spend = CounterMetricFamily(
                    "cos_scanner_spend", "what the billed units cost at [audit] unit_price",
                    labels=["target", "currency"],
                )  # fmt: skip
                spend.add_metric([self.target, self.audit.currency],
                                 t["billed"] * scenes * self.audit.unit_price)  # fmt: skip
                yield spend
        code, end = self.run_end or (t["last_exit_code"], t["last_run_end"])
        gauges = {
            "last_success_timestamp_seconds": ("when a scan of the target last ended done "
                                               "(0: never)", t["last_success"]),
            "last_run_exit_code": ("the exit code of the last run that ended", code),
            "last_run_end_timestamp_seconds": ("when the last run ended (unix time)", end),
            "review_queue": ("flagged and suspicious verdicts nobody has decided yet",
                             t["review_queue"]),
            "review_oldest_seconds": ("age of the oldest undecided verdict in the review "
                                      "queue (0: empty)", t["review_oldest_seconds"]),
        }  # fmt: skip
        for name, (doc, value) in gauges.items():
            if value is not None:
                gauge = GaugeMetricFamily(f"cos_scanner_{name}", doc, labels=["target"])
                gauge.add_metric(label, float(value))
                yield gauge


class ScanMetrics:
    """The metrics of one target while a run of it goes on (and at its end)."""

    def __init__(self, target: str, audit: AuditSettings | None = None) -> None:
        self.registry = CollectorRegistry()
        self._target = target
        self._store = _FromStore(target, audit)
        self.registry.register(self._store)
        self._gauges = {
            name: Gauge(f"cos_scanner_{name}", doc, ["target"], registry=self.registry)
            for name, doc in GAUGES.items()
        }
        self._failed = Gauge(
            "cos_scanner_run_failed",
            "images failed in this run, by reason",
            ["target", "reason"],
            registry=self.registry,
        )
        for name in GAUGES:  # every series present from the first file (an alert reads it)
            self.set(name, 0.0)
        self.set("run_start_timestamp_seconds", time.time())
        self.retries = 0

    def set(self, name: str, value: float) -> None:
        self._gauges[name].labels(self._target).set(value)

    def refresh(self, totals: Mapping[str, Any]) -> None:
        """The store's figures (`Store.monitoring`)."""
        self._store.totals = dict(totals)

    def update(self, p: Progress) -> None:
        """Take the live counters of the run."""
        self.set("run_retries", self.retries)
        self.set("run_retrying", p.retrying)
        self.set("jobs_running", p.jobs_running)
        for reason, n in p.failures.items():
            self._failed.labels(self._target, reason or "unknown").set(n)
        if p.budget is not None:
            self.set("requests_in_flight", p.budget.in_flight)
            self.set("qps_budget", p.budget.rate.rate)
            self.set("run_throttled", p.budget.rate.throttled)
            self.set("run_limiter_wait_seconds", p.budget.rate.waited)

    def finish(self, code: int) -> None:
        """The run is over with exit code `code`: the files written from now on say so."""
        self._store.run_end = (code, time.time())

    def write(self, path: str) -> None:
        """Atomically (a temporary file renamed over the old one)."""
        write_to_textfile(path, self.registry)

    def push(self, url: str, target: str) -> None:
        """To a Pushgateway (blocking): job `cos-scanner`, grouped by target, replacing the
        group's previous push."""
        push_to_gateway(url, job="cos-scanner", registry=self.registry,
                        grouping_key={"target": target}, timeout=10)  # fmt: skip

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

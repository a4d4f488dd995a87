"""Stills of the flagged frames of a video and pages of a document, for the review page.

The URLs in a job's answer are valid for two hours after the query that gave them (reference
12.5), so the stored answer's are not used: the server asks the job again (at most once per
`fresh_for` seconds per job), takes the n-th flagged frame's URL from the fresh answer and
fetches the still itself (the page only ever sees this server's `/frame` URLs)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from scanner.audit.findings import findings
from scanner.audit.jobs import JobClient
from scanner.audit.policy import audit_options
from scanner.clock import MonotonicClock
from scanner.config import Config
from scanner.cos.client import HttpClient
from scanner.media import class_of
from scanner.models import AuditItem
from scanner.retry import RetryPolicy
from scanner.review.thumbs import Thumbs, placeholder

SVG = "image/svg+xml"


class Frames:
    def __init__(
        self, jobs: JobClient | None, thumbs: Thumbs, fresh_for: float = 1800, keep: int = 256
    ) -> None:
        self._jobs = jobs
        self._thumbs = thumbs
        self._fresh_for = fresh_for
        self._keep = keep
        self._answers: OrderedDict[str, tuple[float, list[dict[str, Any]]]] = OrderedDict()
        self.queries = 0

    @classmethod
    def of(cls, config: Config, http: HttpClient, thumbs: Thumbs) -> Frames:
        """The review page's: queries under the scan's [jobs] budget and [retry] policy."""
        retry = RetryPolicy.from_settings(config.retry)
        options = audit_options(config.audit)
        jobs = JobClient(
            http,
            config.cos,
            config.audit,
            config.jobs,
            options,
            retry=retry,
            clock=MonotonicClock(),
        )
        return cls(jobs, thumbs)

    async def get(self, key: str, job_id: str, n: int) -> tuple[bytes, str]:
        """(bytes, content type) of the n-th flagged frame or page of `key`'s job."""
        kind = class_of(key)
        if self._jobs is None or not job_id or kind not in ("video", "document"):
            return placeholder("no frames: not a video's or document's job"), SVG
        found = await self._findings(kind, key, job_id)
        if found is None:
            return placeholder("the job's answer could not be had"), SVG
        stills = [f for f in found if f["url"] and f["kind"] in ("frame", "page")]
        if not 0 <= n < len(stills):
            return placeholder("no such frame"), SVG
        return await self._thumbs.get_url(stills[n]["url"], f"{job_id}/{n}")

    async def _findings(self, kind: str, key: str, job_id: str) -> list[dict[str, Any]] | None:
        now = time.monotonic()
        cached = self._answers.get(job_id)
        if cached is not None and now - cached[0] < self._fresh_for:
            return cached[1]
        self.queries += 1
        answer = await self._jobs.query(kind, job_id, AuditItem(key, "")) if self._jobs else None
        if answer is None or answer.verdict is None or answer.verdict.failed:
            return None
        found = findings(answer.verdict.raw)
        self._answers[job_id] = (now, found)
        while len(self._answers) > self._keep:
            self._answers.popitem(last=False)
        return found

"""The emulator's plain-dataclass state: bucket, keys, faults to inject, and what it saw.

Tests build an EmulatorState, hand it to `build_app`, and inspect `stats` afterwards (or
read them over HTTP at GET /_emulator/stats from another process).
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from scanner.emulator.bucket import Bucket
from scanner.emulator.versions import Versions
from scanner.watch import Changes

DEFAULT_SECRET_ID = "AKIDemulator0000000000000000000000000"
DEFAULT_SECRET_KEY = "emulator-secret-key-000000000000"
DEFAULT_BUCKET = "album-1250000000"
DEFAULT_REGION = "ap-guangzhou"


@dataclass(slots=True)
class KeyPair:
    secret_key: str
    token: str | None = None  # when set, requests must carry this session token
    token_expires: float | None = None  # unix time after which the token is ExpiredToken


@dataclass(slots=True)
class Identity:
    """Where temporary keys come from (`sts`): the CVM role, the TKE OIDC token, lifetimes."""

    lifetime: float = 1800.0  # seconds a handed-out pair lives (at most; DurationSeconds)
    role: str = "cos-scanner"  # the CVM instance's CAM role
    web_identity_token: str = "emulator-oidc-token"  # what AssumeRoleWithWebIdentity accepts
    served: str = ""  # the SecretId the metadata service hands out now


@dataclass(slots=True)
class Faults:
    """What to inject; rates are per request (per image for image_failure_rate)."""

    latency: float = 0.0  # seconds before each API answer
    qps_cap: float = 0.0  # audit requests per second before throttling; 0 = no cap
    object_qps_cap: float = 0.0  # object requests (HEAD, ACL, copy, DELETE) likewise
    list_qps_cap: float = 0.0  # listing requests (pages and folder views) likewise
    jobs_qps_cap: float = 0.0  # moderation job submits and queries likewise
    throttle_status: int = 503
    throttle_code: str = "SlowDown"
    retry_after: float | None = None  # sent as Retry-After on throttling answers
    error_rate: float = 0.0  # 500 InternalError / 503 ServiceUnavailable
    reset_rate: float = 0.0  # connection dropped without an answer
    malformed_rate: float = 0.0  # 200 with a broken XML body
    truncate_rate: float = 0.0  # Content-Length promises more than is sent
    truncate_next: int = 0  # the next N answers truncated (handled, billed, answer lost)
    slow_body: float = 0.0  # seconds to trickle each body out
    image_failure_rate: float = 0.0  # per image: retryable -65010 download failed
    stall_rate: float = 0.0  # requests held `stall` seconds before handling (client timeouts)
    stall: float = 0.0
    fail_next: list[int] = field(default_factory=list)  # statuses for the next requests
    targets: list[str] = field(default_factory=lambda: ["list", "audit"])
    deny_keys: list[str] = field(default_factory=list)  # object writes answered 403 AccessDenied
    deny_buckets: list[str] = field(default_factory=list)  # every request there: 403 (no CAM)
    # object writes to hold: "PUT acl", "PUT copy", "PUT upload", "DELETE"; each pattern holds
    # the first write of its kind (then it is spent): the request waits, is never performed,
    # and is answered 503 once `hold` is set again (a test kills the client meanwhile)
    hold: list[str] = field(default_factory=list)
    body_mode: str = ""  # "", html, bomb, huge, deep, drop_one, unknown_id, ignore_max_keys

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(changes) - names
        if unknown:
            raise ValueError(f"unknown fault(s): {sorted(unknown)}")
        for name, value in changes.items():
            setattr(self, name, value)


@dataclass(slots=True)
class Stats:
    requests: Counter[str] = field(default_factory=Counter)  # by endpoint
    statuses: Counter[str] = field(default_factory=Counter)  # by "endpoint status"
    audits: Counter[str] = field(default_factory=Counter)  # billed verdicts per key
    contents: Counter[str] = field(default_factory=Counter)  # billed verdicts per "etag/size"
    image_failures: Counter[str] = field(default_factory=Counter)  # by code
    list_markers: Counter[str] = field(default_factory=Counter)  # pages served, by marker
    folder_views: Counter[str] = field(default_factory=Counter)  # delimiter listings, by prefix
    sent: Counter[str] = field(default_factory=Counter)  # Object inputs received per key
    users: Counter[str] = field(default_factory=Counter)  # UserInfo.TokenId of inputs
    writes: Counter[str] = field(default_factory=Counter)  # ACL puts, copies, deletes: bucket/key
    billed_units: int = 0  # images x scenes of every verdict
    large_images: int = 0  # verdicts of images compressed by LargeImageDetect (billed)
    faults: Counter[str] = field(default_factory=Counter)  # injected, by kind
    reads: Counter[str] = field(default_factory=Counter)  # GETs outside the album: bucket/key
    audits_in_flight: int = 0  # batch audit requests being answered now
    max_audits_in_flight: int = 0  # the most at once (a client's concurrency cap, seen)
    changes: Changes = field(default_factory=Changes)  # told after each audit answer is billed
    held: list[str] = field(default_factory=list)  # writes held by `hold`: "PUT copy bucket/key"
    credentials_issued: Counter[str] = field(default_factory=Counter)  # temporary pairs, by flow
    expired_tokens: int = 0  # requests refused because their token had expired
    badcases: list[dict[str, str]] = field(default_factory=list)  # POST /report/badcase bodies
    jobs_submitted: Counter[str] = field(default_factory=Counter)  # "kind:key" -> submits
    max_jobs_running: int = 0  # the most media jobs running at once (a client's cap, seen)
    job_units: Counter[str] = field(default_factory=Counter)  # billed: frames/pages x scenes
    job_ids: dict[str, list[str]] = field(default_factory=dict)  # "kind:key" -> JobIds, in order

    def as_json(self, detail: bool) -> dict[str, Any]:
        doubled = [k for k, n in self.audits.items() if n > 1]
        relisted = [m for m, n in self.list_markers.items() if n > 1]
        out: dict[str, Any] = {
            "requests": dict(self.requests),
            "held": list(self.held),
            "statuses": dict(self.statuses),
            "audited_images": sum(self.audits.values()),
            "distinct_images": len(self.audits),
            "distinct_contents": len(self.contents),
            "contents_billed_twice": len([c for c, n in self.contents.items() if n > 1]),
            "billed_units": self.billed_units,
            "large_images": self.large_images,
            "sent_images": sum(self.sent.values()),
            "distinct_sent": len(self.sent),
            "object_writes": sum(self.writes.values()),
            "users_seen": len(self.users),
            "keys_written_twice": len([k for k, n in self.writes.items() if n > 1]),
            "double_audited": len(doubled),
            "double_audited_keys": sorted(doubled)[:100],
            "pages_listed": sum(self.list_markers.values()),
            "pages_listed_twice": len(relisted),
            "folder_views": sum(self.folder_views.values()),  # listings with a delimiter
            "image_failures": dict(self.image_failures),
            "faults": dict(self.faults),
            "reads": dict(self.reads),  # e.g. an Inventory's data files, each read how often
            "max_audits_in_flight": self.max_audits_in_flight,
            "credentials_issued": dict(self.credentials_issued),
            "expired_tokens": self.expired_tokens,
            "badcases": list(self.badcases),
            "jobs_submitted": sum(self.jobs_submitted.values()),
            "jobs_submitted_twice": len([k for k, n in self.jobs_submitted.items() if n > 1]),
            "max_jobs_running": self.max_jobs_running,
            "job_units": dict(self.job_units),
        }
        if detail:
            out["audits"] = dict(self.audits)
            out["contents"] = dict(self.contents)
            out["writes"] = dict(self.writes)
            out["list_markers"] = dict(self.list_markers)
            out["job_ids"] = dict(self.job_ids)
        return out


@dataclass(slots=True)
class Job:
    xml: str  # the JobsDetail element of an async job, served by the query API


@dataclass(slots=True)
class EmulatorState:
    bucket: Bucket = field(default_factory=Bucket)
    bucket_name: str = DEFAULT_BUCKET
    region: str = DEFAULT_REGION
    keys: dict[str, KeyPair] = field(
        default_factory=lambda: {DEFAULT_SECRET_ID: KeyPair(DEFAULT_SECRET_KEY)}
    )
    faults: Faults = field(default_factory=Faults)
    identity: Identity = field(default_factory=Identity)
    stats: Stats = field(default_factory=Stats)
    seed: int = 1
    rng: random.Random = field(default_factory=random.Random)
    audit_times: deque[float] = field(default_factory=deque)
    object_times: deque[float] = field(default_factory=deque)
    list_times: deque[float] = field(default_factory=deque)
    job_times: deque[float] = field(default_factory=deque)  # job submits and queries
    jobs: dict[str, Job] = field(default_factory=dict)
    media_jobs: dict[str, Any] = field(default_factory=dict)  # JobId -> jobs.MediaJob
    job_seconds: float = 0.5  # how long a media job runs before it ends
    versions: Counter[str] = field(default_factory=Counter)
    clock_offset: float = 0.0  # seconds added to the emulator's clock (tests of expiry)
    acls: dict[str, str] = field(default_factory=dict)  # "bucket/key" -> private | public-read
    bucket_acl: str = "public-read"  # what an object at "default" inherits
    extra_buckets: dict[str, Bucket] = field(default_factory=dict)  # e.g. a quarantine bucket
    versioning: Versions = field(default_factory=Versions)  # bucket versioning, per bucket
    fault_updates: int = 0  # POST /_emulator/faults so far: what a held write waits for
    fault_changes: Changes = field(default_factory=Changes)
    served: dict[bytes, str] = field(default_factory=dict)  # content seed -> key GET served
    inventory_dir: Any = None  # where `inventory.generate` writes (a temporary folder)
    fetcher: Any = None  # the aiohttp session that fetches FileUrl / Url inputs (lazily)

    def now(self) -> float:
        """The emulator's clock: unix time plus `clock_offset` (tests of expiry)."""
        return time.time() + self.clock_offset

    def bucket_named(self, name: str) -> Bucket | None:
        if name == self.bucket_name:
            return self.bucket
        return self.extra_buckets.get(name)

    def __post_init__(self) -> None:
        self.rng.seed(self.seed)

    def faults_json(self) -> dict[str, Any]:
        return asdict(self.faults)

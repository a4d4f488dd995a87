"""The settings: a frozen dataclass per config section, their defaults, the DetectType scenes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ENV_SECRET_ID = "TENCENTCLOUD_SECRET_ID"
ENV_SECRET_KEY = "TENCENTCLOUD_SECRET_KEY"
ENV_SESSION_TOKEN = "TENCENTCLOUD_SESSION_TOKEN"
ENV_PREFIX = "COS_SCANNER_"

DEFAULT_REGION = "ap-guangzhou"
DEFAULT_PAGE_SIZE = 1000
DEFAULT_BATCH_SIZE = 100
MAX_BATCH_SIZE = 100
DEFAULT_CONCURRENCY = 16
DEFAULT_QPS = 20.0
DEFAULT_STORE_PATH = "scanner.db"
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Credentials:
    """A key pair and optional session token; never printed."""

    secret_id: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class CosSettings:
    region: str = DEFAULT_REGION  # e.g. ap-guangzhou
    bucket: str = ""  # BucketName-APPID
    prefix: str = ""  # only keys under this prefix
    endpoint: str = ""  # override, e.g. http://127.0.0.1:9000 (Host still names the bucket)
    page_size: int = DEFAULT_PAGE_SIZE  # ListObjects max-keys, 1..1000
    list_concurrency: int = 1  # key ranges listed at once (split by common prefixes), 1..64
    qps: float = 100.0  # a scan's COS requests per second: listing pages, folder views, Inventory
    timeout: float = 30.0  # seconds per request
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # larger answers are refused


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditSettings:
    service: str = "ci"  # ci: CI batch image auditing; ims: IMS ImageModeration ([ims])
    endpoint: str = ""  # override for the CI host
    biz_type: str = ""  # moderation policy; empty = account default
    detect_type: str = ""  # deprecated comma list, any case, or "all"; empty = not sent
    policy_version: str = ""  # bump after editing the BizType policy in the console
    batch_size: int = DEFAULT_BATCH_SIZE  # images per request, 1..100
    concurrency: int = DEFAULT_CONCURRENCY  # requests in flight
    qps: float = DEFAULT_QPS  # request budget per second (strict, no burst)
    interval: int = 0  # GIF: audit every Nth frame; 0 = not sent (API default 5)
    max_frames: int = 0  # GIF: at most N frames; 0 = not sent (API default 5)
    large_image_detect: bool = False  # compress 5-32 MB images before auditing (billed)
    timeout: float = 60.0  # seconds per request (see README: why 60)
    resend_after_timeout: int = 1  # resends of a batch whose answer was lost (maybe billed)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    unit_price: float = 0.0  # price per billed unit (image x scene), for --dry-run estimates
    large_image_price: float = 0.0  # price per image compressed by LargeImageDetect
    currency: str = "CNY"  # the currency of the prices (shown beside them)
    billed_scenes: int = 0  # scenes billed per image; 0 = count detect_type (unknown if empty)

    @property
    def scenes(self) -> tuple[str, ...]:
        """The DetectType scenes, canonical (service spelling and order); () when not sent."""
        return detect_scenes(self.detect_type) or ()

    @property
    def scenes_per_image(self) -> int | None:
        """Billed units per audited image, or None when neither setting tells (a BizType
        policy's scenes are configured in the console, where the scanner cannot see them)."""
        if self.billed_scenes:
            return self.billed_scenes
        return len(self.scenes) or None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSettings:
    include: tuple[str, ...] = ()  # glob patterns on the key; empty = every key
    exclude: tuple[str, ...] = ()  # glob patterns on the key to skip
    modified_after: str = ""  # ISO date/time: skip objects modified before it
    modified_before: str = ""  # ISO date/time: skip objects modified at or after it
    min_size: int = 0  # bytes: skip smaller objects
    max_size: int = 0  # bytes: skip larger objects; 0 = only the API's limits
    incremental: bool = False  # `scan` is a nightly rescan by default (--full to override)
    max_attempts: int = 3  # audit attempts per image for retryable per-image failures
    batch_wait: float = 0.5  # seconds before a partial batch is sent anyway
    lease_stale_after: float = 60.0  # seconds without heartbeat before a lease is taken over
    progress_interval: float = 10.0  # seconds between progress log lines (not on a terminal)
    user_from_key: str = ""  # regex with a named group `user`, e.g. "^albums/(?P<user>[^/]+)/"
    dedupe: bool = True  # identical content (same ETag and size) is audited and billed once
    daily_cap: int = 0  # billed units (image x scene) per UTC day; 0 = no cap
    window: str = ""  # HH:MM-HH:MM of local time: audit only inside it; "" = any time
    media: tuple[str, ...] = ("image",)  # classes audited: image, video, audio, document


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSettings:
    """[jobs]: moderation jobs of videos, voice and documents (reference 12)."""

    concurrency: int = 10  # jobs in flight, submit to final answer (the documented default)
    qps: float = 10.0  # submits and queries per second, together
    poll_interval: float = 5.0  # seconds before a job's first query; doubled up to poll_max
    poll_max: float = 60.0  # the longest wait between two queries of one job
    timeout: float = 30.0  # seconds per request


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoSettings:
    snapshot_mode: str = "Interval"  # Interval | Average | Fps (reference 12.3)
    snapshot_count: int = 100  # frames at most, (0, 10000] (the SDK's default 100)
    snapshot_interval: float = 1.0  # Interval: seconds between frames; Fps: frames a second
    detect_content: bool = False  # also moderate the soundtrack (billed at [audio] unit_price)
    unit_price: float = 0.0  # price per frame x scene, for --dry-run estimates


@dataclass(frozen=True, slots=True, kw_only=True)
class AudioSettings:
    unit_price: float = 0.0  # price per minute of sound (voice notes, video soundtracks)


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentSettings:
    unit_price: float = 0.0  # price per page x scene


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySettings:
    attempts: int = 6  # tries per request, including the first
    deadline: float = 300.0  # seconds for all tries of one request
    wait_initial: float = 0.5  # first backoff ceiling, doubled each try (full jitter)
    wait_max: float = 30.0  # backoff ceiling
    throttle_patience: float = 21_600.0  # seconds one request may keep being throttled


@dataclass(frozen=True, slots=True, kw_only=True)
class FreezeSettings:
    """[audit.freeze]: the service freezes (makes private) an audited object whose scene score
    is at or above the threshold; 0 = off. Sent as <Conf><Freeze> (Object inputs only)."""

    porn_score: int = 0
    ads_score: int = 0
    illegal_score: int = 0
    terrorism_score: int = 0
    politics_score: int = 0
    abuse_score: int = 0
    teenager_score: int = 0

    def thresholds(self) -> dict[str, int]:
        """Scene -> threshold, the ones that are on (`PornScore` is sent for `Porn`)."""
        out = {}
        for scene in DETECT_TYPES:
            value = getattr(self, f"{scene.lower()}_score")
            if value:
                out[scene] = value
        return out


ACT_ACTIONS = ("private", "quarantine")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActSettings:
    qps: float = 50.0  # COS write requests per second for `act` (strict budget, no bursts)
    concurrency: int = 16  # COS requests in flight for `act`
    on_flagged: str = ""  # nightly: "private" | "quarantine" newly flagged objects; "" = off
    min_score: int = 0  # with on_flagged: only Result 1 verdicts scoring at least this
    quarantine_to: str = ""  # cos://bucket-appid/prefix/ for quarantine copies


IMS_DEFAULT_QPS = 50.0  # IMS API 3.0 documents 100 requests/s per account (reference 11)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImsSettings:
    """[ims]: the IMS ImageModeration backend ([audit] service = "ims"), one image per request."""

    endpoint: str = ""  # override, e.g. http://127.0.0.1:9000; empty: the region's public host
    region: str = DEFAULT_REGION  # X-TC-Region
    input: str = "url"  # url: FileUrl, a presigned COS GET URL; content: FileContent (base64)
    qps: float = IMS_DEFAULT_QPS  # requests per second, account-wide: scanners sharing it split it
    concurrency: int = 20  # requests in flight
    url_expiry: int = 3600  # seconds a FileUrl stays valid
    timeout: float = 30.0  # seconds per request


NOTIFY_FORMATS = ("json", "wecom", "dingtalk", "slack")
NOTIFY_EVENTS = ("flagged", "failed", "paused")


@dataclass(frozen=True, slots=True)
class Webhook:
    """One `[[notify.webhooks]]` entry. The URL (a WeCom robot's holds its key) and the secret
    are never printed: `config show` and the logs show the host only."""

    url: str
    format: str = "json"  # json (signed with `secret`), wecom, dingtalk (signed), slack
    secret: str = ""  # json: HMAC-SHA256 key of the body; dingtalk: the robot's signing secret

    def __repr__(self) -> str:
        host = self.url.split("://", 1)[-1].split("/", 1)[0].rpartition("@")[2]
        return f"Webhook({self.format} to {host}/..., secret {'set' if self.secret else 'none'})"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotifySettings:
    """[notify]: webhooks told when a scan flagged images, failed, or paused at a cap."""

    webhooks: tuple[Webhook, ...] = ()
    on: tuple[str, ...] = NOTIFY_EVENTS  # which of the events are sent
    timeout: float = 10.0  # seconds per attempt (three attempts, with backoff)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewSettings:
    """[review]: the review page as the team reaches it."""

    public_url: str = ""  # https://review.example.com/ behind a proxy: links in notifications
    report_badcase: bool = False  # tell CI its wrong verdicts (approve flagged, block normal)
    claim_minutes: float = 10.0  # cards a page shows are held for its reviewer this long
    on_block: str = "none"  # none | private | quarantine: a block is applied through `act`
    on_approve: str = "none"  # none | restore: an approve undoes what `act` did to the object


CREDENTIAL_PROVIDERS = ("auto", "env", "profile", "cvm-role", "tke-oidc")
METADATA_ENDPOINT = "http://metadata.tencentyun.com/latest/meta-data/"
STS_ENDPOINT = "https://sts.tencentcloudapi.com/"
TKE_VARS = ("TKE_REGION", "TKE_PROVIDER_ID", "TKE_WEB_IDENTITY_TOKEN_FILE", "TKE_ROLE_ARN")


@dataclass(frozen=True, slots=True, kw_only=True)
class CredentialSettings:
    """[credentials]: where the keys come from (the secrets themselves never sit in the file).
    `auto` follows the common SDK's order: environment, profile file, CVM role, TKE OIDC."""

    provider: str = "auto"  # auto | env | profile | cvm-role | tke-oidc
    metadata_endpoint: str = METADATA_ENDPOINT  # the CVM metadata service's base URL
    role: str = ""  # cvm-role: the CAM role's name; "" = the one the metadata service names
    sts_endpoint: str = STS_ENDPOINT  # tke-oidc: AssumeRoleWithWebIdentity (API 3.0)
    duration_seconds: int = 7200  # tke-oidc: DurationSeconds asked for, 900..43200


@dataclass(frozen=True, slots=True)
class TkeIdentity:
    """The TKE pod identity's variables (reference 13.3); the token file is re-read each time."""

    region: str
    provider_id: str
    token_file: str
    role_arn: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """What the configuration found before any request: a long-term pair (environment or
    profile file) and where it came from, and the TKE variables when set."""

    keys: Credentials | None = None
    keys_from: str = ""  # e.g. "env TENCENTCLOUD_SECRET_ID", "profile /etc/tencentcloud/..."
    tke: TkeIdentity | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSettings:
    path: str = DEFAULT_STORE_PATH  # SQLite file with the checkpoints and verdicts


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    cos: CosSettings = field(default_factory=CosSettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    scan: ScanSettings = field(default_factory=ScanSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    freeze: FreezeSettings = field(default_factory=FreezeSettings)
    act: ActSettings = field(default_factory=ActSettings)
    ims: ImsSettings = field(default_factory=ImsSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    credentials: CredentialSettings = field(default_factory=CredentialSettings)
    jobs: JobSettings = field(default_factory=JobSettings)
    video: VideoSettings = field(default_factory=VideoSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    document: DocumentSettings = field(default_factory=DocumentSettings)
    identity: Identity = field(default_factory=Identity)

    @property
    def keys(self) -> Credentials | None:
        """The long-term pair found in the environment or profile file, if any."""
        return self.identity.keys


SECTIONS: dict[str, type[Any]] = {
    "cos": CosSettings,
    "audit": AuditSettings,
    "audit.freeze": FreezeSettings,
    "scan": ScanSettings,
    "retry": RetrySettings,
    "store": StoreSettings,
    "act": ActSettings,
    "ims": ImsSettings,
    "notify": NotifySettings,
    "review": ReviewSettings,
    "credentials": CredentialSettings,
    "jobs": JobSettings,
    "video": VideoSettings,
    "audio": AudioSettings,
    "document": DocumentSettings,
}
#: Config field of each section (a dotted section is a TOML sub-table).
FIELDS = {name: name.rsplit(".", 1)[-1] for name in SECTIONS}

DETECT_TYPES = ("Porn", "Terrorism", "Politics", "Ads", "Illegal", "Abuse", "Teenager")
MAX_SCENES = len(DETECT_TYPES)


def detect_scenes(value: str) -> tuple[str, ...] | None:
    """`value` ("porn,ADS", "all", ...) as canonical scenes; None if a name is unknown."""
    names = {p.strip().lower() for p in value.split(",") if p.strip()}
    if "all" in names:
        return DETECT_TYPES
    known = {t.lower(): t for t in DETECT_TYPES}
    if names - set(known):
        return None
    return tuple(t for t in DETECT_TYPES if t.lower() in names)

"""The CI single-image API (`cos-scanner check`): one image now, by key or by URL.

`GET /<key>?ci-process=sensitive-content-recognition` on the bucket's COS host (signed like
any COS request), or `GET /?ci-process=...&detect-url=<url>` for an image anywhere (reference
3.4; the SDK's `get_object_sensitive_content_recognition`). The answer's root is
`<RecognitionResult>`, whose fields are a batch JobsDetail's: it decodes the same way.
Billed per image and scene, as batch auditing is.
"""

from __future__ import annotations

from scanner.audit.codec import decode_job
from scanner.audit.policy import audit_options, is_gif
from scanner.clock import Clock
from scanner.config import AuditSettings, CosSettings
from scanner.cos.client import HttpClient, cos_service, unreadable
from scanner.cos.xml import XmlError, parse
from scanner.errors import OnRetry
from scanner.models import AuditItem, ImageVerdict
from scanner.retry import RetryPolicy, retrying

#: DetectType scenes as the single-image API spells them (the SDK's CiDetectType names).
SINGLE_SCENES = {
    "Porn": "porn",
    "Terrorism": "terrorist",
    "Politics": "politics",
    "Ads": "ads",
    "Illegal": "illegal",
    "Abuse": "abuse",
    "Teenager": "teenager",
}


def single_params(item: AuditItem, settings: AuditSettings) -> dict[str, str]:
    """The query of one single-image request (the SDK's parameter names)."""
    options = audit_options(settings)
    params = {"ci-process": "sensitive-content-recognition"}
    if settings.scenes:
        params["detect-type"] = ",".join(SINGLE_SCENES[s] for s in settings.scenes)
    if options.biz_type:
        params["biz-type"] = options.biz_type
    if item.url:
        params["detect-url"] = item.url
    if is_gif(item.url or item.key):
        if options.interval:
            params["interval"] = str(options.interval)
        if options.max_frames:
            params["max-frames"] = str(options.max_frames)
    if options.large_image_detect:
        params["large-image-detect"] = "1"
    if item.data_id:
        params["dataid"] = item.data_id
    return params


class SingleImageClient:
    def __init__(
        self,
        http: HttpClient,
        cos: CosSettings,
        settings: AuditSettings,
        *,
        retry: RetryPolicy,
        clock: Clock,
        on_retry: OnRetry | None = None,
    ) -> None:
        self._http = http
        self._service = cos_service(cos)
        self._settings = settings
        self._retry = retry
        self._clock = clock
        self._on_retry = on_retry
        self.options = audit_options(settings)

    async def check(self, item: AuditItem) -> ImageVerdict:
        """The verdict for one image (a key of the bucket, or `item.url`)."""
        params = single_params(item, self._settings)
        path = "/" if item.url else "/" + item.key

        async def attempt() -> ImageVerdict:
            reply = await self._http.send(
                self._service, "GET", path, params=params, timeout_s=self._settings.timeout,
                max_bytes=self._settings.max_response_bytes,
            )  # fmt: skip
            try:
                root = parse(reply.body)
                if root.tag != "RecognitionResult":
                    raise ValueError(f"expected <RecognitionResult>, got <{root.tag}>")
            except (XmlError, ValueError) as exc:
                raise unreadable("audit", "single-image answer", reply, exc) from exc
            return decode_job(root, item, reply.body.decode("utf-8", "replace"))

        return await retrying(self._retry, self._clock, attempt, on_retry=self._on_retry)

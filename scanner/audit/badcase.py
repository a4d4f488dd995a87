"""Telling CI it was wrong: `POST /report/badcase` (reference 15).

A reviewer's decision that contradicts the service is sent once: an approve of a flagged image
(the service's label, SuggestedLabel `Normal`) and a block of an image the service called
normal (`Normal`, the reviewer's label). It changes no verdict; Tencent confirms the case in the
background and a confirmed case affects later moderation. Images only (ContentType 2, a `Url`
the service can fetch: a presigned GET for an object, the entry itself for a URL list); the
JobId and the moderation time when known. IMS has no such API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from scanner.cos.client import HttpClient, Service, unreadable
from scanner.cos.xml import XmlError, parse, text

IMAGE = 2
URL_SECONDS = 7 * 86_400  # how long the presigned Url lives: Tencent looks at it later


@dataclass(frozen=True, slots=True)
class Badcase:
    url: str  # where the service can fetch the picture
    label: str  # the service's label
    suggested_label: str  # what it is: Normal for an approve, the reviewer's label for a block
    job_id: str = ""
    moderated_at: float | None = None

    def xml(self) -> bytes:
        parts = [f"<ContentType>{IMAGE}</ContentType>", f"<Url>{escape(self.url)}</Url>",
                 f"<Label>{escape(self.label)}</Label>",
                 f"<SuggestedLabel>{escape(self.suggested_label)}</SuggestedLabel>"]  # fmt: skip
        if self.job_id:
            parts.append(f"<JobId>{escape(self.job_id)}</JobId>")
        if self.moderated_at is not None:
            when = datetime.fromtimestamp(self.moderated_at, UTC).isoformat(timespec="seconds")
            parts.append(f"<ModerationTime>{when}</ModerationTime>")
        return f"<Request>{''.join(parts)}</Request>".encode()


async def report_badcase(http: HttpClient, ci: Service, case: Badcase, timeout: float) -> str:  # noqa: ASYNC109
    """Send one case; its RequestId. Raises the client's RemoteError (retried by the caller:
    a resend of feedback costs nothing)."""
    reply = await http.send(
        ci, "POST", "/report/badcase", body=case.xml(), content_type="application/xml",
        timeout_s=timeout, max_bytes=64 * 1024,
    )  # fmt: skip
    try:
        return text(parse(reply.body), "RequestId") or reply.request_id
    except XmlError as exc:
        raise unreadable("audit", "badcase answer", reply, exc, retryable=True) from exc

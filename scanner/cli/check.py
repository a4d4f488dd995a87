"""`cos-scanner check KEY|URL`: one image audited now, its verdict printed (and stored).

Through the CI single-image API ([audit] service = "ci") or IMS ImageModeration ("ims"). A
key is an object of the configured bucket; an http(s) URL is an image anywhere. With
`--store` the verdict is kept like a scan's (a key's under the bucket, with the object's
ETag and size, so scans reuse it; a URL's under the target urls://check).
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from typing import Any

import anyio

from scanner.audit.backend import ServiceProfile
from scanner.audit.ims import ImsClient
from scanner.audit.policy import audit_options
from scanner.audit.raw import raw_to_dict
from scanner.audit.single import SingleImageClient
from scanner.cli.commands import EXIT_IMAGES_FAILED, EXIT_OK, fail, load_config_of, log_retry
from scanner.clock import MonotonicClock
from scanner.config import Config, ScanSettings
from scanner.cos.client import HttpClient
from scanner.cos.credentials import provider_of
from scanner.cos.objects import ObjectClient
from scanner.errors import ConfigError, SkippedInputError, echo
from scanner.limiter import AuditBudget
from scanner.models import AuditItem, ImageVerdict, ObjectRef, Target
from scanner.retry import RetryPolicy
from scanner.scan.filter import ObjectFilter
from scanner.scan.plan import IMS_CONTENT_URLS
from scanner.sources.urls import url_identity, url_problem
from scanner.store import Store
from scanner.uploaders import user_of

CHECK_TARGET = Target("", "", "", urls="check")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_RESULTS = {0: "normal", 1: "sensitive", 2: "suspicious"}
#: What each reason `check` refuses means (the scan's reasons: `report --state skipped`).
_WHY = {
    "not-image": ": not an image extension the service moderates",
    **{
        f"{kind}-not-enabled": f": a {kind}; `scan` moderates it with a job when [scan] media "
        f"names {kind}; `check` audits images"
        for kind in ("video", "audio", "document")
    },
    "empty": ": 0 bytes",
    "archived": ": an archive storage class must be restored before it can be read",
    "too-large": ": larger than the service accepts",
    "needs-large-image-detect": ": over 10 MB; set [audit] large_image_detect = true",
    "unencodable-key": ": the key cannot be sent in XML",
}


def run_check(args: argparse.Namespace) -> int:
    config = load_config_of(args, full=True)
    what = args.image
    is_url = _SCHEME.match(what) is not None  # ftp://... is a URL, and refused below
    if is_url and (problem := url_problem(what)):
        raise ConfigError(f"{echo(url_identity(what))} is not an http(s) URL the services can "
                          f"fetch ({problem})")  # fmt: skip
    if is_url and config.audit.service == "ims" and config.ims.input == "content":
        raise ConfigError(IMS_CONTENT_URLS)
    if not is_url and (not what or what.endswith("/")):
        raise ConfigError(f"{what!r} is not an object key (nor an http(s) URL)")
    if args.store is not None:  # the store is checked before the image is billed
        anyio.run(_store_ready, config)
    verdict, ref = anyio.run(_check, config, what, is_url)
    if args.store is not None and not verdict.failed:
        anyio.run(_keep, config, ref, verdict, is_url)
    if args.json:
        print(json.dumps(_as_json(verdict, config), ensure_ascii=False))
    else:
        print(_as_text(verdict))
    if verdict.failed:
        fail(f"cos-scanner: {what}: {verdict.code}: {verdict.message}")
        return EXIT_IMAGES_FAILED
    return EXIT_OK


async def _check(config: Config, what: str, is_url: bool) -> tuple[ImageVerdict, ObjectRef]:
    clock, retry = MonotonicClock(), RetryPolicy.from_settings(config.retry)
    budget = AuditBudget(1, 1000.0, clock)
    item = AuditItem(what, "check", user_of(config.scan)(what), what if is_url else "")
    now = datetime.now(UTC)
    async with HttpClient(provider_of(config)) as http:
        ref = ObjectRef(what, "", 0, now, "URL")
        if not is_url:  # the verdict belongs to this ETag and size: later scans reuse it
            objects = ObjectClient(http, config.cos, retry=retry, clock=clock, budget=budget)
            head = await objects.head(what)
            if head is None:
                return ImageVerdict(what, "check", code="NoSuchKey", message="no such object"), ref
            ref = ObjectRef(what, head.etag, head.size, now, head.storage_class)
            if reason := ObjectFilter.from_settings(ScanSettings(), config.audit).reason(ref):
                raise SkippedInputError(f"{what!r}: a scan skips it ({reason}{_WHY[reason]})")
        if ServiceProfile.of(config).name == "ims":
            ims = ImsClient(
                http, config.cos, config.audit, config.ims, retry=retry,
                clock=clock, budget=budget, on_retry=log_retry,
                options=audit_options(config.audit),
            )  # fmt: skip
            (verdict,) = await ims.moderate([item])
            return verdict, ref
        single = SingleImageClient(
            http, config.cos, config.audit, retry=retry, clock=clock, on_retry=log_retry
        )
        return await single.check(item), ref


async def _store_ready(config: Config) -> None:
    """The store opens: not empty, not another program's, not damaged (StoreError)."""
    async with await Store.open(config.store.path):
        pass


async def _keep(config: Config, ref: ObjectRef, verdict: ImageVerdict, is_url: bool) -> None:
    target = CHECK_TARGET if is_url else Target.of(config.cos)
    policy = audit_options(config.audit).fingerprint_for(ref.key, ref.size)
    user = user_of(config.scan)(ref.key)
    async with await Store.open(config.store.path) as store:
        await store.record_check(target, ref, verdict, policy, user)


def _as_text(v: ImageVerdict) -> str:
    if v.failed:
        return f"{v.key}: failed {v.code}: {v.message}"
    assert v.result is not None
    label = f"{v.label} / {v.sub_label}" if v.sub_label else v.label
    lines = [
        f"{v.key}: Result {int(v.result)} ({_RESULTS[int(v.result)]})  {label}  score {v.score}"
    ]
    for name, scene in v.scenes.items():
        if scene.hit_flag or scene.score:
            detail = ", ".join(x for x in (scene.label, scene.sub_label) if x)
            lines.append(f"  {name}: {'hit' if scene.hit_flag else 'no hit'}, score {scene.score}"
                         + (f", {detail}" if detail else ""))  # fmt: skip
            lines += [f"    OCR {o.text!r} keywords {list(o.keywords)}" for o in scene.ocr_results]
    if v.text:
        lines.append(f"  text {v.text!r}")
    return "\n".join(lines)


def _as_json(v: ImageVerdict, config: Config) -> dict[str, Any]:
    out: dict[str, Any] = {"image": v.key, "service": ServiceProfile.of(config).name}
    if v.failed:
        return {**out, "code": v.code, "message": v.message}
    return {
        **out,
        "result": None if v.result is None else int(v.result),
        "label": v.label,
        "sub_label": v.sub_label,
        "score": v.score,
        "job_id": v.job_id,
        "verdict": raw_to_dict(v.raw) if v.raw else None,
    }

"""The emulator's XML answers, written as COS and CI write them (reference 1.2, 1.5, 3.3, 3.6)."""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterable, Sequence
from urllib.parse import quote
from xml.sax.saxutils import escape

from scanner.emulator.bucket import StoredObject
from scanner.emulator.rules import Verdict


class Refusal(Exception):
    """An error answer of any emulated API: HTTP status, error code, message. (IMS answers
    its errors with status 200 and the code in the JSON body.)"""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


DECLARATION = "<?xml version='1.0' encoding='utf-8' ?>\n"
_ids = itertools.count(1)


def request_id() -> str:
    return base64.b64encode(f"emu_{next(_ids):012d}".encode()).decode()


def error_xml(service: str, code: str, message: str, rid: str, resource: str) -> str:
    res = f"<Resource>{escape(resource)}</Resource>" if service == "cos" else ""
    return (
        f"{DECLARATION}<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"{res}<RequestId>{rid}</RequestId><TraceId>{rid}</TraceId></Error>"
    )


def list_xml(
    *,
    bucket: str,
    prefix: str,
    marker: str,
    max_keys: int,
    delimiter: str,
    encoding: str,
    contents: Sequence[tuple[str, StoredObject]],
    prefixes: Sequence[str],
    next_marker: str | None,
) -> str:
    enc = (lambda s: quote(s, safe="/")) if encoding == "url" else escape
    parts = [DECLARATION, "<ListBucketResult>", f"<Name>{bucket}</Name>"]
    if encoding:
        parts.append(f"<EncodingType>{escape(encoding)}</EncodingType>")
    parts.append(f"<Prefix>{enc(prefix)}</Prefix>" if prefix else "<Prefix/>")
    parts.append(f"<Marker>{enc(marker)}</Marker>" if marker else "<Marker/>")
    parts.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if delimiter:
        parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    parts.append(f"<IsTruncated>{'true' if next_marker is not None else 'false'}</IsTruncated>")
    if next_marker is not None:
        parts.append(f"<NextMarker>{enc(next_marker)}</NextMarker>")
    parts.extend(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes)
    owner = bucket.rsplit("-", 1)[-1]
    for key, obj in contents:
        tier = (
            "<StorageTier>FREQUENT</StorageTier>"
            if obj.storage_class == "INTELLIGENT_TIERING"
            else ""
        )
        parts.append(
            f"<Contents><Key>{enc(key)}</Key>"
            f"<LastModified>{obj.last_modified.strftime('%Y-%m-%dT%H:%M:%S.000Z')}</LastModified>"
            f"<ETag>&quot;{obj.etag}&quot;</ETag><Size>{obj.size}</Size>"
            f"<Owner><ID>{owner}</ID><DisplayName>{owner}</DisplayName></Owner>"
            f"<StorageClass>{obj.storage_class}</StorageClass>{tier}</Contents>"
        )
    parts.append("</ListBucketResult>")
    return "".join(parts)


def _scene_xml(tag: str, verdict: Verdict, scene: str) -> str:
    hit = next((h for h in verdict.hits if h.scene == scene), None)
    if hit is None:
        return (
            f"<{tag}><Code>0</Code><Msg>OK</Msg><HitFlag>0</HitFlag><Score>0</Score>"
            f"<Label>Normal</Label><Category></Category><SubLabel></SubLabel></{tag}>"
        )
    ocr = ""
    if hit.ocr_text:
        kws = "".join(f"<Keywords>{escape(k)}</Keywords>" for k in hit.keywords)
        ocr = (
            f"<OcrResults><Text>{escape(hit.ocr_text)}</Text>{kws}<Location><X>10.0</X>"
            "<Y>20.0</Y><Width>200.0</Width><Height>40.0</Height><Rotate>0.0</Rotate>"
            "</Location></OcrResults>"
        )
    lib = ""
    if hit.result == 1:
        lib = (
            f"<LibResults><ImageId>lib-{hit.scene.lower()}-001</ImageId><Score>{hit.score}"
            "</Score><LibType>1</LibType><LibName>system</LibName></LibResults>"
        )
    return (
        f"<{tag}><Code>0</Code><Msg>OK</Msg><HitFlag>{hit.result}</HitFlag>"
        f"<Score>{hit.score}</Score><Label>{hit.scene}</Label><Category>{hit.scene}</Category>"
        f"<SubLabel>{hit.sub_label}</SubLabel>{ocr}{lib}</{tag}>"
    )


def scene_tag(scene: str) -> str:
    return f"{scene}Info"


def job_xml(
    *,
    data_id: str,
    job_id: str,
    source: str,
    value: str,
    verdict: Verdict,
    scenes: Iterable[str],
    state: str = "Success",
    forbid_state: int | None = None,
) -> str:
    """One JobsDetail element; `source` is Object, Url or Content."""
    echo = f"<{source}>{escape(value)}</{source}>" if source != "Content" else ""
    head = f"<DataId>{escape(data_id)}</DataId><JobId>{job_id}</JobId>"
    if verdict.code:
        return (
            f"<JobsDetail><Code>{verdict.code}</Code><Message>{escape(verdict.message)}"
            f"</Message>{head}<State>Failed</State>{echo}</JobsDetail>"
        )
    if state != "Success":
        return f"<JobsDetail>{head}<State>{state}</State>{echo}</JobsDetail>"
    text = next((h.ocr_text for h in verdict.hits if h.ocr_text), "")
    blocks = "".join(_scene_xml(scene_tag(s), verdict, s) for s in scenes)
    lists = ""
    if verdict.result == 1:
        lists = (
            "<ListInfo><ListResults><ListType>1</ListType><ListName>blocklist</ListName>"
            "<Entity>emulator</Entity></ListResults></ListInfo>"
        )
    return (
        f"<JobsDetail>{head}<State>Success</State>{echo}"
        f"<Label>{verdict.label}</Label><Result>{verdict.result}</Result>"
        f"<Score>{verdict.score}</Score><Category>{verdict.label if verdict.result else ''}"
        f"</Category><SubLabel>{verdict.sub_label}</SubLabel><Text>{escape(text)}</Text>"
        f"<CompressionResult>{int(verdict.compressed)}</CompressionResult>{blocks}{lists}"
        f"{'' if forbid_state is None else f'<ForbidState>{forbid_state}</ForbidState>'}"
        "</JobsDetail>"
    )


def response_xml(jobs: Iterable[str], rid: str) -> str:
    return f"{DECLARATION}<Response>{''.join(jobs)}<RequestId>{rid}</RequestId></Response>"

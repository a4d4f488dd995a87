"""URL lists (`scan --urls FILE`): images that live anywhere, audited by URL.

A list is one URL per line, or a CSV file whose header has a `url` column (any case); blank
lines and lines starting with `#` are not entries. It is a target of its own in the store,
`urls://<absolute path>`, read in pages of `page_size` entries whose listing marker is the
line number where the next page starts, so a killed scan resumes there and never reads a
finished page again. The file's SHA-256 is kept with the scan: a resume refuses a list that
changed since the scan began. Standard input (`-`) is first copied to a file named after its
hash beside the store, so it can be resumed the same way.

Each entry is an `ObjectRef` whose key is the URL's identity: the URL without the query
parameters of a signature (COS `q-sign-algorithm` ... `q-signature`, S3's `X-Amz-*`, OSS,
CloudFront and CDN auth), so tomorrow's re-signed export of the same pictures is the same
entries and no signature reaches the store or a report. When the two differ, the URL to fetch
travels in the ref's `storage_class` (a URL entry has no storage class; "URL" when the key is
the URL itself), which `scan_objects` keeps, so a resumed scan fetches it again (`fetch_url`).
ETag and size are unknown: "" and 0. An entry that is not an http(s) URL, or is longer than a
URL may be, is listed and skipped (`not-a-url`); one carrying credentials
(`https://user:pw@host/`) is skipped `not-a-url: credentials in URL`, its key with `***` in
their place, and is never sent. A URL listed twice is recorded once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from scanner.digests import file_digest
from scanner.errors import ConfigError
from scanner.models import Decision, ObjectRef, Page, Target

MAX_URL = 4096
_NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def spool_stdin(store_path: str, stream: IO[bytes] | None = None) -> Path:
    """Standard input copied to `<store dir>/.cos-scanner-urls/<sha256>.txt` (kept, so that a
    killed scan of it can be resumed by piping the same list again)."""
    folder = Path(store_path).resolve().parent / ".cos-scanner-urls"
    folder.mkdir(exist_ok=True)
    partial = folder / "stdin.partial"
    digest = hashlib.sha256()
    source = stream or sys.stdin.buffer
    with partial.open("wb") as out:
        while block := source.read(1 << 20):
            digest.update(block)
            out.write(block)
    final = folder / f"{digest.hexdigest()}.txt"
    shutil.move(partial, final)
    return final


def url_target(path: Path) -> Target:
    return Target("", "", "", urls=str(path.resolve()))


#: A URL entry's storage class when its key is the URL to fetch.
URL_CLASS = "URL"
CREDENTIALS_IN_URL = "not-a-url: credentials in URL"

#: Query parameters of a URL's signature (lower case): COS (reference 2), S3 presigned URLs,
#: Alibaba OSS, CloudFront, and CDN URL authentication (`sign`, with its `t` in type D).
SIGNATURE_PARAMS = frozenset({
    "q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-header-list",
    "q-url-param-list", "q-signature", "x-cos-security-token",
    "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires",
    "x-amz-signedheaders", "x-amz-signature", "x-amz-security-token",
    "ossaccesskeyid", "signature", "expires", "security-token", "key-pair-id", "policy",
    "sign", "auth_key",
})  # fmt: skip


def url_problem(url: str) -> str:
    """Why an entry is not a URL the services can fetch ("" when it is one)."""
    if len(url) > MAX_URL:
        return "not-a-url"
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return "not-a-url"
        _ = parts.port  # a port that is not a number is not a URL
    except ValueError:
        return "not-a-url"
    if parts.username is not None or parts.password is not None:
        return CREDENTIALS_IN_URL
    return ""


def url_identity(url: str) -> str:
    """What names the picture a URL fetches: the URL without its signature's query parameters
    and fragment, and with credentials, if any, replaced by `***` (never stored)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port, as url_problem says
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        names = {k.lower() for k, _ in pairs}
        drop = SIGNATURE_PARAMS | ({"t"} if "sign" in names else set())
        if names & drop:
            query = urlencode([(k, v) for k, v in pairs if k.lower() not in drop])
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def url_ref(url: str) -> ObjectRef:
    """A list entry as an ObjectRef: its identity as key, the URL to fetch kept when it
    differs (never when it carries credentials)."""
    key = url_identity(url)
    fetch = URL_CLASS if key == url or url_problem(url) else url
    return ObjectRef(key, "", 0, _NO_TIME, fetch)


def fetch_url(ref: ObjectRef) -> str:
    """The URL to send for a URL entry (its key, or the signed URL it was listed as)."""
    return ref.key if ref.storage_class == URL_CLASS else ref.storage_class


def url_list_file(path: Path) -> Path:
    """`--urls FILE` checked: a file (ConfigError otherwise)."""
    if not path.is_file():
        raise ConfigError(f"--urls {str(path)!r} is not a file")
    return path


class UrlList:
    """Pages of a URL list: `page(marker)` as `Lister.page`, marker = the next line number."""

    def __init__(self, path: Path, page_size: int = 1000) -> None:
        self.path = url_list_file(path)
        self.page_size = page_size
        self.digest = file_digest(path)
        self._fh: io.TextIOWrapper | None = None
        self._line = 0  # lines read so far from _fh
        self._column: int | None = None  # CSV: the url column; None: one URL per line

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _open_at(self, line: int) -> io.TextIOWrapper:
        if self._fh is not None and self._line == line:
            return self._fh
        self.close()
        fh = self.path.open(encoding="utf-8", errors="replace", newline="")
        first = fh.readline()
        self._column = _url_column(first)
        fh.seek(0)
        self._line = 0
        for _ in range(line):
            if not fh.readline():
                break
            self._line += 1
        self._fh = fh
        return fh

    async def page(self, marker: str) -> Page:
        start = int(marker or 0)
        fh = self._open_at(start)
        refs: dict[str, ObjectRef] = {}
        while len(refs) < self.page_size:
            raw = fh.readline()
            if not raw:
                self.close()
                return Page(marker, tuple(refs.values()), next_marker=None)
            self._line += 1
            url = self._url_of(raw)
            if url:
                ref = url_ref(url)
                refs.setdefault(ref.key, ref)
        return Page(marker, tuple(refs.values()), next_marker=str(self._line))

    def _url_of(self, raw: str) -> str:
        line = raw.strip()
        if not line or line.startswith("#"):
            return ""
        if self._column is None:
            return line
        if self._line == 1:
            return ""  # the header
        cells = next(csv.reader([line]), [])
        return cells[self._column].strip() if len(cells) > self._column else ""


def _url_column(first: str) -> int | None:
    if "," not in first:
        return None
    cells = [c.strip().lower() for c in next(csv.reader([first.strip()]), [])]
    return cells.index("url") if "url" in cells else None


class UrlFilter:
    """What of a URL list is audited: every http(s) URL; the rest is skipped `not-a-url`."""

    def decide(self, ref: ObjectRef) -> Decision:
        return Decision(ref, self.reason(ref))

    def reason(self, ref: ObjectRef) -> str:
        return url_problem(fetch_url(ref))

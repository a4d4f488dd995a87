"""URL lists (`scan --urls FILE`): images that live anywhere, audited by URL.

A list is one URL per line, or a CSV file whose header has a `url` column (any case); blank
lines and lines starting with `#` are not entries. It is a target of its own in the store,
`urls://<absolute path>`, read in pages of `page_size` entries whose listing marker is the
line number where the next page starts, so a killed scan resumes there and never reads a
finished page again. The file's SHA-256 is kept with the scan: a resume refuses a list that
changed since the scan began. Standard input (`-`) is first copied to a file named after its
hash beside the store, so it can be resumed the same way.

Each entry is an `ObjectRef` whose key is the URL (ETag and size unknown: "" and 0); an entry
that is not an http(s) URL, or is longer than a URL may be, is listed and skipped
(`not-a-url`); a URL listed twice is recorded once.
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
from urllib.parse import urlsplit

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


def url_problem(url: str) -> str:
    """Why an entry is not a URL the services can fetch ("" when it is one)."""
    if len(url) > MAX_URL:
        return "not-a-url"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "not-a-url"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not-a-url"
    return ""


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
            if url and url not in refs:
                refs[url] = ObjectRef(url, "", 0, _NO_TIME, "URL")
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
        return Decision(ref, url_problem(ref.key))

    def reason(self, ref: ObjectRef) -> str:
        return url_problem(ref.key)

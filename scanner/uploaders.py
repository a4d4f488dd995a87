"""Who uploaded an object: `[scan] user_from_key`, a regex whose group `user` names the
uploader in the key. Used where verdicts are made (the scan), reported (`report --by-user`) and
acted on (`act --user`), so it lives beside none of them."""

from __future__ import annotations

import re
from collections.abc import Callable

from scanner.config import ScanSettings


def user_of(scan: ScanSettings) -> Callable[[str], str]:
    """The uploader a key names (`[scan] user_from_key`), or "" when it names none."""
    if not scan.user_from_key:
        return lambda _key: ""
    pattern = re.compile(scan.user_from_key)

    def user(key: str) -> str:
        match = pattern.search(key)
        return (match["user"] or "") if match else ""

    return user

"""A file's digest, read in 1 MiB blocks (flat memory for files of any size). Leaf module."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of the file's bytes: sha256 (a URL list's identity) or md5 (an ETag, an
    Inventory's md5Checksum)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()

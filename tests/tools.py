"""Tools of the machine some tests drive (Debian's chromium, promtool)."""

from __future__ import annotations

import os

import pytest


def required_tool(path: str | None, reason: str, required_by: str) -> str:
    """A machine's tool (Debian's chromium, promtool), or a one-line skip: a failure where the
    environment variable `required_by` is 1 (CI installs the tool and must run the tests)."""
    if path is None:
        if os.environ.get(required_by) == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path

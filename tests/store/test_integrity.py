"""A damaged store is reported in one line before anything is billed (issue 25, item 6)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.helpers import ENV, emulator_process, stats, write_config


def cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scanner", *argv], env=ENV,
                          capture_output=True, text=True, check=False)  # fmt: skip


def test_a_truncated_store_is_refused_in_one_line(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    with emulator_process("--objects", "2000", "--seed", "62") as url:
        cfg = write_config(tmp_path / "c.toml", url, store)
        assert cli("scan", "--config", str(cfg), "--max-images", "600").returncode == 4
        intact = store.read_bytes()
        assert not Path(str(store) + "-wal").exists()  # checkpointed at close
        with sqlite3.connect(store) as conn:
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
        assert pages > 20
        billed = stats(url)["audited_images"]
        # a copy cut short: the last third of the pages missing
        store.write_bytes(intact[: len(intact) * 2 // 3])
        for argv in (["scan"], ["check", "a.jpg", "--store", str(store)], ["status"]):
            done = cli(*argv, "--config", str(cfg))
            lines = done.stderr.strip().splitlines()
            assert done.returncode == 1, done.stderr
            assert len(lines) == 1, lines
            assert "is damaged (" in lines[0]
            assert "where its header says" in lines[0]
            assert "Traceback" not in done.stderr
        assert stats(url)["audited_images"] == billed  # nothing was sent to be billed
        assert len(store.read_bytes()) == len(intact) * 2 // 3  # and nothing was written
        # a page overwritten at the end of the file: the last rows cannot be read
        damaged = bytearray(intact)
        page = int.from_bytes(intact[16:18], "big")
        damaged[-page:] = os.urandom(page)
        store.write_bytes(bytes(damaged))
        done = cli("scan", "--config", str(cfg))
        assert done.returncode == 1, done.stderr
        assert "is damaged (" in done.stderr
        store.write_bytes(intact)  # the backup put back: the scan goes on where it was
        assert cli("scan", "--config", str(cfg)).returncode in (0, 3)

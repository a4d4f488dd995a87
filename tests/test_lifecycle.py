"""A model checks the lifecycle (issue 25, item 9).

A hypothesis state machine drives random sequences of what users do over weeks: full,
incremental, force, retry-failed, prefix and URL-list scans, `--max-images` pauses, failing
scans (every audit answered 500; wrong keys), `scan --abandon`, and changes to the bucket
(uploads, copies, overwrites, deletions). Each command runs for real (`main`, in this process)
against the emulator, served over loopback from a thread. The model knows which contents need a
verdict and which scans are unfinished, and after every step checks:

- billing: each content is billed at most once per reason to bill it (it is new, or a `--force`
  scan covers it), and every URL of the list at most once;
- a scan that ends done left nothing its mode should have audited unbilled, and `report` lists
  exactly the bucket's keys at their current ETags;
- the store's unfinished scans are the ones the model expects, of the expected modes;
- no command says there is nothing to do while the model has work.

`make test` runs a few examples (under two minutes); `-m slow` runs more.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from scanner.cli import main
from scanner.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, EmulatorState, running
from scanner.emulator.bucket import Bucket, StoredObject, etag_of
from scanner.emulator.rules import verdict_for
from tests.helpers import write_config

PREFIXES = ("a/", "b/")
WHOLE = ""


class EmulatorThread:
    """The emulator served from a thread of its own, so commands can run in this one."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.url = ""
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=anyio.run, args=(self._serve,), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the emulator did not start")

    async def _serve(self) -> None:
        async with running(self.state) as url:
            self.url = url
            self._ready.set()
            await anyio.to_thread.run_sync(self._stop.wait)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Scan:
    """An unfinished scan as the model knows it."""

    mode: str  # full, incremental, force, retry-failed
    listed: dict[str, str] | None  # key -> ETag its listing saw (None: not listed yet)


@dataclass
class Target:
    """What the model knows of one target's scans."""

    unfinished: list[Scan] = field(default_factory=list)  # oldest first
    latest: str = ""  # the newest scan's fate: "", done, abandoned, unfinished
    force_left: set[str] = field(default_factory=set)  # contents an unfinished --force may bill


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="lifecycle-"))
        self.state = EmulatorState(bucket=Bucket(), seed=7)
        self.emulator = EmulatorThread(self.state)
        self.store = self.dir / "s.db"
        self.cfg = write_config(self.dir / "c.toml", self.emulator.url, self.store,
                                concurrency=2, batch_size=4)  # fmt: skip
        self.urls = self.dir / "urls.txt"
        self.urls.write_text("")
        self.env_before = {k: os.environ.get(k) for k in ("TENCENTCLOUD_SECRET_ID",
                                                           "TENCENTCLOUD_SECRET_KEY")}  # fmt: skip
        os.environ["TENCENTCLOUD_SECRET_ID"] = DEFAULT_SECRET_ID
        os.environ["TENCENTCLOUD_SECRET_KEY"] = DEFAULT_SECRET_KEY
        self.serial = 0
        self.need: set[str] = set()  # contents without a valid verdict ("etag/size")
        self.targets = {p: Target() for p in (WHOLE, *PREFIXES)}
        self.url_target = Target()
        self.url_need: set[str] = set()  # URLs of the list without a verdict
        self.listed_urls: list[str] = []
        self.scanned_urls_list = ""  # the list's text when its last scan began
        for n in range(6):
            self._upload(PREFIXES[n % 2])
        assert main(["migrate", "--config", str(self.cfg)]) == 0

    def teardown(self) -> None:
        self.emulator.close()
        for k, v in self.env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the bucket ---------------------------------------------------------------------------

    @property
    def objects(self) -> dict[str, StoredObject]:
        return self.state.bucket.objects

    def _content(self, obj: StoredObject) -> str:
        return f"{obj.etag}/{obj.size}"

    def _fresh(self, key: str) -> StoredObject:
        """A new picture at `key` the service judges (no per-image failure by the rules)."""
        while True:
            self.serial += 1
            obj = StoredObject(etag_of(key, self.serial), 4000 + self.serial, datetime.now(UTC))
            if not verdict_for(key, obj).code:
                return obj

    def _upload(self, prefix: str) -> None:
        key = f"{prefix}p{self.serial:04d}.jpg"
        obj = self._fresh(key)
        self.state.bucket.put(key, obj)
        self._new_content(obj)

    def _new_content(self, obj: StoredObject) -> None:
        content = self._content(obj)
        if not any(self._content(o) == content for k, o in self.objects.items() if o is not obj):
            self.need.add(content)

    def _mine(self) -> list[str]:
        """Keys the bucket rules may change or delete (not those behind the URL list)."""
        return sorted(k for k in self.objects if not k.startswith("u/"))

    @rule(prefix=st.sampled_from(PREFIXES), n=st.integers(1, 3))
    def upload(self, prefix: str, n: int) -> None:
        for _ in range(n):
            self._upload(prefix)

    @precondition(lambda self: self._mine())
    @rule(data=st.data(), prefix=st.sampled_from(PREFIXES))
    def copy(self, data: st.DataObject, prefix: str) -> None:
        """A re-upload of a picture under another key: the same bytes, ETag and size."""
        source = data.draw(st.sampled_from(self._mine()))
        self.serial += 1
        key = f"{prefix}c{self.serial:04d}.jpg"
        obj = self.objects[source]
        self.state.bucket.put(key, StoredObject(obj.etag, obj.size, datetime.now(UTC),
                                                content=obj.content or source))  # fmt: skip

    @precondition(lambda self: self._mine())
    @rule(data=st.data())
    def overwrite(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self._mine()))
        obj = self._fresh(key)
        self.state.bucket.put(key, obj)
        self._new_content(obj)

    @precondition(lambda self: len(self._mine()) > 2 and not any(
        t.unfinished for t in self.targets.values()))  # fmt: skip
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(self._mine()))
        self.state.bucket.delete(key)

    # -- commands -----------------------------------------------------------------------------

    def _run(self, *argv: str) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main([*argv, "--config", str(self.cfg)])
        return code, out.getvalue()

    def _billed(self) -> tuple[Counter[str], Counter[str]]:
        return Counter(self.state.stats.contents), Counter(self.state.stats.audits)

    def _in_scope(self, prefix: str) -> set[str]:
        """The contents of the live keys under `prefix`."""
        return {self._content(o) for k, o in self.objects.items() if k.startswith(prefix)}

    def _outcomes(self, prefix: str) -> bool:
        """Whether the store holds verdicts or failures under `prefix` (what an incremental
        scan compares with)."""
        code, out = self._run("report", "--format", "json", *(["--prefix", prefix] if prefix
                                                                else []))  # fmt: skip
        assert code == 0
        return any(n for state, n in json.loads(out)["by_state"].items() if state != "skipped")

    def _opening(self, t: Target, mode: str, prefix: str) -> tuple[Scan | None, str]:
        """What a command does (the runner's rule): ("resume" | "new" | "nothing") with the
        scan it goes on with. A plain scan resumes the newest unfinished scan, and does not
        repeat a done one; --incremental and --retry-failed resume only one of their own mode;
        --force abandons every unfinished scan."""
        if mode == "force":
            t.unfinished, t.force_left = [], self._in_scope(prefix)
            return Scan("force", None), "new"
        newest = t.unfinished[-1] if t.unfinished else None
        if newest is not None and (mode == "full" or newest.mode == mode):
            return newest, "resume"
        if mode == "full" and t.latest == "done":
            return None, "nothing"
        if mode == "incremental" and not t.latest and not self._outcomes(prefix):
            mode = "full"  # nothing to compare with yet: a first scan is a full one
        return Scan(mode, None), "new"

    def _covered(self, scan: Scan, prefix: str) -> dict[str, str]:
        """The live keys (and ETags) a scan that ends done must have judged: what its listing
        saw and is still there, unchanged (a resumed scan does not list again)."""
        listed = scan.listed if scan.listed is not None else {}
        return {k: e for k, e in listed.items() if k in self.objects
                and self.objects[k].etag == e and k.startswith(prefix)}  # fmt: skip

    def _scan(self, prefix: str, mode: str, max_images: int | None, fault: str = "") -> None:
        t = self.targets[prefix]
        before, _ = self._billed()
        scan, action = self._opening(t, mode, prefix)
        lists = scan is not None and scan.listed is None  # its listing is still to be made
        if lists and fault != "wrong-key":
            assert scan is not None
            scan.listed = self._live(prefix)
        listed = scan is not None and scan.listed is not None  # (a wrong key fails a listing)
        if fault and scan is not None and listed and not self._to_bill(scan, prefix, t):
            fault = ""  # nothing to pay for: no audit request, so no refusal either
        had_work = bool(self.need & self._in_scope(prefix)) or bool(t.force_left)
        argv = ["scan"] + ([f"--{mode}"] if mode != "full" else [])
        argv += ["--prefix", prefix] if prefix else []
        argv += ["--max-images", str(max_images)] if max_images else []
        code, out = self._command(argv, fault if action != "nothing" else "")
        paid = self._paid(before, t if scan is not None and scan.mode == "force" else None)
        assert not (had_work and "nothing to" in out), out  # never "nothing to do" with work
        if action == "nothing":
            assert (code, paid) == (0, set()), (code, out)
            assert "finished earlier" in out  # and it says what to run instead
            return
        assert scan is not None
        if action == "new":
            t.unfinished.append(scan)
        t.latest = "unfinished"
        if fault:
            assert code == (77 if fault == "wrong-key" else 1), (fault, code, out)
            assert not paid
            return
        if code == 4:
            assert max_images is not None, out
            return
        assert code == 0, (code, out)
        t.unfinished.remove(scan)
        t.latest = "done"
        self._check_done(scan, prefix, t)

    def _to_bill(self, scan: Scan, prefix: str, t: Target) -> set[str]:
        """The contents a resumed scan still has to pay for (the rest it takes from verdicts
        made since, by other scans)."""
        covered = self._covered(scan, prefix)
        contents = {f"{self.objects[k].etag}/{self.objects[k].size}" for k in covered}
        return contents & (self.need | (t.force_left if scan.mode == "force" else set()))

    def _command(self, argv: list[str], fault: str) -> tuple[int, str]:
        if fault == "audit-500":
            self.state.faults.error_rate, self.state.faults.targets = 1.0, ["audit"]
        if fault == "wrong-key":
            os.environ["TENCENTCLOUD_SECRET_KEY"] = "wrong"
        try:
            return self._run(*argv)
        finally:
            self.state.faults.error_rate, self.state.faults.targets = 0.0, ["list", "audit"]
            os.environ["TENCENTCLOUD_SECRET_KEY"] = DEFAULT_SECRET_KEY

    def _paid(self, before: Counter[str], forced: Target | None) -> set[str]:
        """The contents billed since `before`: each at most once, each for a reason the
        model knows (no verdict yet, or a --force scan that has not judged it yet)."""
        billed, _ = self._billed()
        billed.subtract(before)
        paid = {c for c, n in billed.items() if n > 0}
        assert all(n <= 1 for n in billed.values()), billed
        allowed = self.need | (forced.force_left if forced is not None else set())
        assert paid <= allowed, paid - allowed
        self.need -= paid
        for t in self.targets.values():  # a --force scan takes verdicts made since it began
            t.force_left -= paid
        return paid

    def _check_done(self, scan: Scan, prefix: str, t: Target) -> None:
        """A scan that ended done judged every key it covers: none of their contents is
        still waiting for a verdict, and `report` shows each at its ETag."""
        covered = self._covered(scan, prefix)
        contents = {f"{self.objects[k].etag}/{self.objects[k].size}" for k in covered}
        if scan.mode != "retry-failed":
            assert not contents & self.need, ("left unaudited", contents & self.need, scan)
            self._check_report(prefix, covered, exact=scan.listed == self._live(prefix))
        if scan.mode == "force":
            assert not contents & t.force_left, ("force left", contents & t.force_left)

    def _live(self, prefix: str) -> dict[str, str]:
        return {k: o.etag for k, o in self.objects.items() if k.startswith(prefix)}

    def _check_report(self, prefix: str, covered: dict[str, str], exact: bool) -> None:
        """The report's audited rows: each covered key at its ETag; with `exact` (the scan
        listed the bucket as it is now), exactly the live keys."""
        code, out = self._run("report", "--format", "jsonl", "--state", "audited",
                              *(["--prefix", prefix] if prefix else []))  # fmt: skip
        assert code == 0
        rows = {r["key"]: r["etag"] for r in map(json.loads, out.splitlines())}
        assert covered.items() <= rows.items(), set(covered.items()) - set(rows.items())
        if exact:
            live = self._live(prefix)
            assert rows == live, (set(rows) ^ set(live), prefix)

    @rule(mode=st.sampled_from(["full", "incremental", "force", "retry-failed"]),
          prefix=st.sampled_from((WHOLE, *PREFIXES)),
          max_images=st.none() | st.integers(1, 6))  # fmt: skip
    def scan(self, mode: str, prefix: str, max_images: int | None) -> None:
        self._scan(prefix, mode, max_images)

    @rule(mode=st.sampled_from(["full", "incremental"]), fault=st.sampled_from(
        ["audit-500", "wrong-key"]))  # fmt: skip
    def failing_scan(self, mode: str, fault: str) -> None:
        self._scan(WHOLE, mode, None, fault)

    @rule(prefix=st.sampled_from((WHOLE, *PREFIXES)))
    def abandon(self, prefix: str) -> None:
        code, out = self._run("scan", "--abandon", *(["--prefix", prefix] if prefix else []))
        assert code == 0, out
        t = self.targets[prefix]
        said = [line for line in out.splitlines() if re.match(r"scan \d+ \(.*\) abandoned", line)]
        assert len(said) == len(t.unfinished), out  # one line per scan it drops
        if t.unfinished and t.latest == "unfinished":
            t.latest = "abandoned"
        t.unfinished, t.force_left = [], set()

    # -- a URL list -----------------------------------------------------------------------------

    @rule(n=st.integers(0, 2), max_images=st.none() | st.integers(1, 2))
    def scan_urls(self, n: int, max_images: int | None) -> None:
        """Append `n` URLs of new pictures (when no scan of the list is unfinished: a list
        that changed under a paused scan is refused), then `scan --urls`."""
        t = self.url_target
        if not t.unfinished:
            for _ in range(n):
                key = f"u/p{self.serial:04d}.jpg"
                obj = self._fresh(key)
                self.state.bucket.put(key, obj)
                self._new_content(obj)
                url = f"{self.emulator.url}/{key}"
                self.listed_urls.append(url)
                self.url_need.add(url)
            self.urls.write_text("".join(f"{u}\n" for u in self.listed_urls))
        _, before = self._billed()
        argv = ["scan", "--urls", str(self.urls)]
        code, out = self._run(*argv, *(["--max-images", str(max_images)] if max_images else []))
        _, after = self._billed()
        after.subtract(before)
        paid = {u for u, k in after.items() if k > 0 and u.startswith("http")}
        assert all(after[u] <= 1 for u in paid)
        assert paid <= self.url_need, paid - self.url_need
        if self.url_need:
            assert "nothing to" not in out, out
        self.url_need -= paid
        if code == 4:
            t.unfinished = [Scan("full", {})]
            return
        assert code == 0, (code, out)
        t.unfinished = []
        assert not self.url_need, self.url_need

    # -- what holds after every step --------------------------------------------------------------

    @invariant()
    def unfinished_scans_are_the_expected_ones(self) -> None:
        if not self.store.exists():
            return
        code, out = self._run("status", "--json", "--limit", "1000")
        assert code == 0
        held: dict[str, list[str]] = {}
        for s in sorted(json.loads(out), key=lambda s: s["scan_id"]):
            if s["state"] not in ("done", "abandoned"):
                held.setdefault(s["target"], []).append(s["mode"])
        expected = {}
        for prefix, t in self.targets.items():
            if t.unfinished:
                modes = [s.mode for s in t.unfinished]
                expected[f"cos://album-1250000000.ap-guangzhou/{prefix}"] = modes
        if self.url_target.unfinished:
            expected[f"urls://{self.urls.resolve()}"] = ["full"]
        assert held == expected


Lifecycle.TestCase.settings = settings(
    max_examples=int(os.environ.get("LIFECYCLE_EXAMPLES", "25")),
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
TestLifecycle = Lifecycle.TestCase


@pytest.mark.slow
def test_lifecycle_more_examples() -> None:
    """More and longer sequences (`make test` runs the slow marker, so CI does)."""
    runner: Any = Lifecycle.TestCase("runTest")
    runner.settings = settings(max_examples=12, stateful_step_count=20, deadline=None,
                               suppress_health_check=list(HealthCheck))  # fmt: skip
    runner.runTest()


# Sequences the machine shrank to while it was built, kept as plain tests. Each was the model
# being wrong about the scanner, not the reverse; the behaviour they pin is the scanner's.


def test_a_prefix_scan_finishes_what_a_paused_scan_left_and_it_bills_nothing_again() -> None:
    """A whole-bucket scan paused after 4 images; a prefix scan audits the rest of its half;
    the resumed whole-bucket scan takes those verdicts: it sends nothing, so even a service
    answering every audit with 500 cannot fail it."""
    machine = Lifecycle()
    try:
        machine.scan(max_images=4, mode="full", prefix="")
        machine.scan(max_images=None, mode="full", prefix="b/")
        machine.failing_scan(fault="audit-500", mode="full")
        assert machine.targets[WHOLE].latest == "done"
    finally:
        machine.teardown()


def test_a_scan_refused_before_listing_lists_when_resumed() -> None:
    """A first scan with a wrong key fails at its listing and stays unfinished; an
    incremental scan beside it does the work; the refused scan, resumed, lists the bucket as
    it is then and finishes without paying for anything again."""
    machine = Lifecycle()
    try:
        machine.failing_scan(fault="wrong-key", mode="full")
        machine.scan(max_images=None, mode="incremental", prefix="")
        machine.upload(prefix="a/", n=1)
        machine.scan(max_images=None, mode="full", prefix="")  # resumes the refused scan
        assert not machine.targets[WHOLE].unfinished
        machine.unfinished_scans_are_the_expected_ones()
    finally:
        machine.teardown()

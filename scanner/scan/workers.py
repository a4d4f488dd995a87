"""`scan --workers N`: audit requests built, sent and read in N processes.

    lister ─▶ batcher ─▶ auditors (budget, retries) ─▶ writer        the scan's process
                              │ one attempt = items ▲ verdicts | error
                              ▼                     │
                         worker 1 … worker N: encode XML, sign, POST, decode the answer

The scan's process keeps everything that must be one: the listing and its checkpoints, the
single SQLite writer, admission, and the audit budget (in-flight slots and the QPS rate) with
its retry and lost-answer rules. Only the CPU-heavy middle of an attempt moves out: building
the request body, signing, the HTTP exchange and parsing the answer (for a 100-image answer,
most of the scanner's CPU). A slot and a rate token are taken in the scan's process before an
attempt is handed to a worker and given back when its answer (or error) returns, so the
budgets are exactly as strict as with one process: no worker can send a request the budget
has not granted.

A worker is `python -m scanner.scan.workers`, talking over its stdin/stdout in length-prefixed
pickles (the parent is the only writer of its stdin: nothing else can reach it). Its first
frame is its settings (credentials, [cos], [audit], freeze); then each frame is
`(id, items)` and each answer `(id, verdicts)` or `(id, error)`, a RemoteError carried with its
fields (a lost answer's `maybe_sent`, a throttle's `retry_after`), raised again in the parent
so the retry and billing rules see exactly what an in-process attempt would raise. A worker
that dies fails the attempts it held as transport errors that may have been sent (the answer
is lost: at most `resend_after_timeout` resends, as for any lost answer); the scan goes on with
the other workers, and fails only when none is left.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import struct
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from scanner.audit.client import read_answer
from scanner.audit.codec import encode_batch
from scanner.audit.policy import AuditOptions
from scanner.config import AuditSettings, CosSettings, CredentialSettings, Identity
from scanner.cos.client import HttpClient, ci_service
from scanner.cos.credentials import provider_for
from scanner.errors import RemoteError, TransportError
from scanner.models import AuditItem, ImageVerdict
from scanner.store import pack_raw

_LENGTH = struct.Struct("!I")
PER_PROCESS = 5_000  # images/s one process drives comfortably (bench/scan_throughput.py)


def default_workers(qps: float, concurrency: int, batch_size: int) -> int:
    """Enough processes for what the budget can ask for, at most the cores: qps requests a
    second, but no more than `concurrency` answers every 0.5 s (the fastest batch answers),
    times `batch_size` images, at PER_PROCESS images/s a process."""
    wanted = int(min(qps, concurrency / 0.5) * batch_size // PER_PROCESS) + 1
    return max(1, min(os.cpu_count() or 1, wanted))


@dataclass(frozen=True, slots=True)
class WorkerSetup:
    credentials: CredentialSettings
    identity: Identity
    cos: CosSettings
    audit: AuditSettings
    options: AuditOptions


def _pack(obj: object) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


def _error_state(exc: RemoteError) -> tuple[type[RemoteError], dict[str, Any], str]:
    return type(exc), dict(exc.__dict__), str(exc)


def _error_from(state: tuple[type[RemoteError], dict[str, Any], str]) -> RemoteError:
    cls, fields, text = state
    exc = cls.__new__(cls)
    Exception.__init__(exc, text)
    exc.__dict__.update(fields)
    return exc


def _packed(verdict: ImageVerdict) -> ImageVerdict:
    """`verdict` with its raw deflated here, in the worker: the scan's one process writes it."""
    packed = pack_raw(verdict.raw)
    return replace(verdict, raw_packed=packed) if isinstance(packed, bytes) else verdict


async def attempt(
    http: HttpClient, setup: WorkerSetup, items: Sequence[AuditItem]
) -> list[ImageVerdict]:
    """One audit request of `items`: the part of an attempt a worker does (and what the
    in-process client does between taking and giving back its budget)."""
    reply = await http.send(
        ci_service(setup.cos, setup.audit),
        "POST",
        "/image/auditing",
        body=encode_batch(items, setup.options),
        content_type="application/xml",
        timeout_s=setup.audit.timeout,
        max_bytes=setup.audit.max_response_bytes,
    )
    return read_answer(reply, items)


@dataclass
class _Worker:
    process: Process
    reader: BufferedByteReceiveStream
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    waiting: dict[int, tuple[anyio.Event, list[Any]]] = field(default_factory=dict)
    alive: bool = True


class WorkerPool:
    """N worker processes; `attempt(items)` runs one audit attempt in the least busy one."""

    def __init__(self, setup: WorkerSetup, count: int) -> None:
        self._setup = setup
        self._count = count
        self._workers: list[_Worker] = []
        self._ids = itertools.count()
        self._stack = AsyncExitStack()
        self._tg: anyio.abc.TaskGroup | None = None

    @property
    def count(self) -> int:
        return sum(w.alive for w in self._workers)

    async def __aenter__(self) -> WorkerPool:
        await self._stack.__aenter__()
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for _ in range(self._count):
            process = await anyio.open_process(
                [sys.executable, "-m", "scanner.scan.workers"], stderr=None, env=env
            )
            assert process.stdin is not None
            assert process.stdout is not None
            worker = _Worker(process, BufferedByteReceiveStream(process.stdout))
            await process.stdin.send(_pack(self._setup))
            self._workers.append(worker)
            self._tg.start_soon(self._read, worker)
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            for worker in self._workers:
                if worker.process.stdin is not None:
                    await worker.process.stdin.aclose()  # the worker ends when its input does
            with anyio.move_on_after(5):
                for worker in self._workers:
                    await worker.process.wait()
            for worker in self._workers:
                if worker.process.returncode is None:
                    worker.process.kill()
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
        await self._stack.__aexit__(t, e, tb)

    async def _read(self, worker: _Worker) -> None:
        try:
            while True:
                (size,) = _LENGTH.unpack(await worker.reader.receive_exactly(_LENGTH.size))
                rid, outcome = pickle.loads(await worker.reader.receive_exactly(size))
                event, box = worker.waiting.pop(rid)
                box.append(outcome)
                event.set()
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.ClosedResourceError):
            pass
        worker.alive = False
        for event, box in worker.waiting.values():  # its answers are lost with it
            box.append(("error", _error_state(_died())))
            event.set()
        worker.waiting.clear()

    async def attempt(self, items: Sequence[AuditItem]) -> list[ImageVerdict]:
        live = [w for w in self._workers if w.alive]
        if not live:
            raise TransportError("audit", "every audit worker process has died", maybe_sent=False)
        worker = min(live, key=lambda w: len(w.waiting))
        rid = next(self._ids)
        event, box = anyio.Event(), list[Any]()
        worker.waiting[rid] = (event, box)
        assert worker.process.stdin is not None
        try:
            async with worker.lock:
                await worker.process.stdin.send(_pack((rid, list(items))))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            worker.waiting.pop(rid, None)
            raise TransportError(
                "audit", "an audit worker process died", maybe_sent=False
            ) from None
        await event.wait()
        kind, value = box[0]
        if kind == "error":
            raise _error_from(value)
        verdicts: list[ImageVerdict] = value
        return verdicts


def _died() -> TransportError:
    return TransportError("audit", "an audit worker process died", maybe_sent=True)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    out = sys.stdout.buffer

    async def frame() -> Any:
        try:
            (size,) = _LENGTH.unpack(await reader.readexactly(_LENGTH.size))
            return pickle.loads(await reader.readexactly(size))
        except asyncio.IncompleteReadError:
            return None

    setup: WorkerSetup | None = await frame()
    if setup is None:
        return

    async def handle(rid: int, items: list[AuditItem]) -> None:
        try:
            verdicts = [_packed(v) for v in await attempt(http, setup, items)]
            outcome: tuple[str, Any] = ("ok", verdicts)
        except RemoteError as exc:
            outcome = ("error", _error_state(exc))
        out.write(_pack((rid, outcome)))
        out.flush()

    async with (
        HttpClient(
            provider_for(setup.credentials, setup.identity), connections=setup.audit.concurrency + 4
        ) as http,
        anyio.create_task_group() as tg,
    ):  # an attempt that raises anything but a RemoteError ends the worker: the scan's
        # process then counts its attempts as lost answers, as for a worker killed -9
        while (request := await frame()) is not None:
            tg.start_soon(handle, *request)


if __name__ == "__main__":
    anyio.run(_serve)

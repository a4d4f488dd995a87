"""One live process per target and kind of work (I5): `async with lease(store, target,
stale_after) as owner`: a scan leases its target, an act run `ActLease(target)`.

Entering takes the target's lease (refusing with ScanBusyError while a live process holds
it, taking over a stale or dead one) and keeps a heartbeat beside the body; a heartbeat that
finds the lease gone cancels the body and raises ScanBusyError. Leaving, however it happens
(a signal, an error, a cancellation), releases this owner's claims and the lease.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from scanner.errors import ScanBusyError
from scanner.models import Target
from scanner.store import Store
from scanner.store.leases import Leased


@dataclass(frozen=True, slots=True)
class ActLease:
    """The lease of `act --apply` on a target: one act run at a time, beside any scan."""

    target: Target

    @property
    def id(self) -> str:
        return "act:" + self.target.id

    @property
    def doing(self) -> str:
        return "acted on"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_dead(host: str, pid: int) -> bool:
    """Whether a lease holder is known dead (same host, no such process)."""
    return host == socket.gethostname() and not _pid_alive(pid)


async def _heartbeat(store: Store, target: Leased, owner: str, stale_after: float) -> None:
    while True:
        await anyio.sleep(max(1.0, stale_after / 4))
        if not await store.heartbeat(target, owner, stale_after):
            raise ScanBusyError(f"lost the lease on {target.id} to another process")


@asynccontextmanager
async def lease(store: Store, target: Leased, stale_after: float) -> AsyncIterator[str]:
    """Hold the target's lease for the body; yields the owner name its claims carry."""
    host = socket.gethostname()
    owner = f"{host}:{os.getpid()}:{secrets.token_hex(4)}"
    await store.acquire_lease(
        target, owner, host=host, pid=os.getpid(), stale_after=stale_after, is_dead=is_dead
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_heartbeat, store, target, owner, stale_after, name="heartbeat")
            try:
                yield owner
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:  # the body's own error, or the heartbeat's, alone
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await store.release_claims(owner)
            await store.release_lease(target, owner)

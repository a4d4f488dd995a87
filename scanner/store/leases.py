"""Leases: one live scanner per target (I5), with a heartbeat; a stale or dead one is taken over."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from scanner.errors import ScanBusyError
from scanner.models import split_target
from scanner.store.base import StoreBase
from scanner.store.claims import others_live, publish_claims
from scanner.store.contents import recover_contents


class Leased(Protocol):
    """What holds a lease: a scan's target, or an act's (`act:` + the target's id)."""

    @property
    def id(self) -> str: ...

    @property
    def doing(self) -> str:
        """What its holder does, for the busy line: "scanned", "acted on"."""
        ...


class Leases(StoreBase):
    async def acquire_lease(
        self,
        target: Leased,
        owner: str,
        *,
        host: str,
        pid: int,
        stale_after: float,
        is_dead: Callable[[str, int], bool],
    ) -> None:
        """Take the target's lease, or raise ScanBusyError naming the live holder."""
        now = time.time()
        async with self._tx() as conn:
            async with conn.execute(
                "SELECT owner, host, pid, heartbeat_at FROM leases WHERE target = ?", (target.id,)
            ) as cur:
                row = await cur.fetchone()
            if row is not None and row[0] != owner:
                held_host, held_pid, beat = row[1], int(row[2]), float(row[3])
                if now - beat < stale_after and not is_dead(held_host, held_pid):
                    raise ScanBusyError(
                        f"{target.id} is being {target.doing} by pid {held_pid} on {held_host} "
                        f"(heartbeat {now - beat:.0f}s ago); not starting a second one"
                    )
            # beside another live scan of the bucket, claims are rows from the start (sharing)
            scope = split_target(target.id)[0]
            others, _ = await others_live(conn, scope, owner, now - stale_after)
            await conn.execute(
                "INSERT INTO leases (target, owner, host, pid, acquired_at, heartbeat_at, "
                "published) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET "
                "owner = excluded.owner,"
                " host = excluded.host, pid = excluded.pid, acquired_at = excluded.acquired_at,"
                " heartbeat_at = excluded.heartbeat_at, published = excluded.published",
                (target.id, owner, host, pid, now, now, int(others)),
            )
            if others:
                self._claims.published.add(owner)
            self._claims.leased.add(owner)
            await recover_contents(conn, now - stale_after, is_dead)

    async def heartbeat(self, target: Leased, owner: str, stale_after: float = 60.0) -> bool:
        """Refresh the lease; False if someone else holds it now. A scan that keeps its claims
        in memory writes them as rows once another live scan of its bucket shows (sharing)."""
        now = time.time()
        async with self._tx() as conn:
            cur = await conn.execute(
                "UPDATE leases SET heartbeat_at = ? WHERE target = ? AND owner = ?",
                (now, target.id, owner),
            )
            if cur.rowcount != 1:
                return False
            if owner not in self._claims.published and not target.id.startswith("act:"):
                scope = split_target(target.id)[0]
                if (await others_live(conn, scope, owner, now - stale_after))[0]:
                    await publish_claims(conn, self._claims, owner, now)
            return True

    async def lease_of(self, lease_id: str) -> tuple[str, int, float] | None:
        """(host, pid, last heartbeat) of the lease `lease_id` (a target's id), or None."""
        row = await self._one(
            "SELECT host, pid, heartbeat_at FROM leases WHERE target = ?", (lease_id,)
        )
        return None if row is None else (str(row[0]), int(row[1]), float(row[2]))

    async def release_lease(self, target: Leased, owner: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                "DELETE FROM leases WHERE target = ? AND owner = ?", (target.id, owner)
            )

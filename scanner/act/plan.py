"""What an act run would do, from the store alone: the selection, where copies go, and why
objects are left out. Nothing here sends a request.

A selection is a report filter over the target's current audited verdicts (the same filters
as `report`), less the objects an action is already in effect on. A quarantine location
inside the scanned target is refused: the copies would be scanned and acted on again.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from scanner.act.apply import Place
from scanner.clock import span
from scanner.errors import ConfigError
from scanner.models import Target
from scanner.store import ReportFilter, Store

ACTIONS = ("private", "quarantine", "delete", "restore")
_COS_URL = re.compile(
    r"^cos://(?P<bucket>[a-z0-9](?:[a-z0-9-]*[a-z0-9])?-[0-9]{5,})/(?P<prefix>.*)$"
)


def quarantine_place(url: str, target: Target) -> Place:
    """`cos://bucket-appid/prefix/` as a Place; refused inside the scanned target."""
    match = _COS_URL.match(url)
    if match is None or (match["prefix"] and not match["prefix"].endswith("/")):
        raise ConfigError(f"--to {url!r}: must be cos://bucket-appid/prefix/ (ending in /)")
    bucket, prefix = match["bucket"], match["prefix"]
    if bucket == target.bucket and prefix.startswith(target.prefix):
        raise ConfigError(
            f"--to {url!r} is inside the scanned target {target.id}: the copies would be "
            "scanned and acted on again; use another bucket or a prefix outside it"
        )
    return Place("" if bucket == target.bucket else bucket, prefix)


def params_of(
    where: ReportFilter, place: Place | None, undoes: int | None, overwrite: bool = False
) -> dict[str, Any]:
    """What identifies a run's selection (running the same command again resumes it)."""
    params = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(where).items()}
    params = {k: v for k, v in params.items() if v not in (None, (), [], "", False)}
    if place is not None:
        params["to"] = place.text
    if undoes is not None:
        params["undoes"] = undoes
    if overwrite:
        params["overwrite"] = True
    return params


#: Requests per object of each action (HEADs included), for the time estimate.
REQUESTS = {"private": 3, "quarantine": 5, "delete": 3, "restore": 4}


@dataclass(frozen=True, slots=True)
class Plan:
    action: str
    target: str
    objects: int  # what --apply will act on
    bytes: int
    samples: list[str]
    skipped: dict[str, int]  # left out, by outcome: already done, already restored, deleted
    place: str | None = None
    by_label: dict[str, int] = field(default_factory=dict)
    reuploaded: dict[int, int] = field(default_factory=dict)  # run -> keys uploaded anew since
    qps: float = 0.0  # [act] qps: the time estimate

    @property
    def seconds(self) -> float:
        return self.objects * REQUESTS[self.action] / self.qps if self.qps else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "objects": self.objects,
            "bytes": self.bytes,
            "by_label": self.by_label,
            "reuploaded_since_run": {str(k): v for k, v in self.reuploaded.items()},
            "samples": self.samples,
            "skipped": self.skipped,
            "to": self.place,
            "estimated_seconds": round(self.seconds, 1),
        }

    def text(self) -> str:
        where = f" to {self.place}" if self.place else ""
        lines = [
            f"plan for {self.target}: {self.action}{where} (nothing sent; --apply to do it)",
            f"  objects   {self.objects:>12,}   {self.bytes / 2**30:,.2f} GiB   "
            f"~{span(self.seconds)} at [act] qps {self.qps:g}",
        ]
        if self.by_label:
            labels = ", ".join(f"{k or '-'} {v:,}" for k, v in self.by_label.items())
            lines.append(f"  by label  {labels}")
        for run, n in self.reuploaded.items():
            lines.append(
                f"  re-uploaded since run {run}: {n:,} (acted on before; a new object now)"
            )
        skips = ", ".join(f"{k} {v:,}" for k, v in self.skipped.items()) or "none"
        lines.append(f"  left out  {sum(self.skipped.values()):>12,}   {skips}")
        lines.append(
            "  at apply  each object's ETag is checked first: changed since the audit or gone "
            "means skipped, never acted on; a write removes only the audited version"
        )
        lines += [f"  e.g.      {key!r}" for key in self.samples]
        return "\n".join(lines)


async def plan(
    store: Store,
    target: Target,
    action: str,
    where: ReportFilter,
    place: Place | None = None,
    undoes: int | None = None,
    qps: float = 0.0,
) -> Plan:
    if undoes is not None:
        run = await store.act_run(undoes)
        undo = await store.undo_plan(undoes)
        left = {"already restored": undo["already_restored"],
                "not restorable: deleted": undo["deleted"]}  # fmt: skip
        return Plan(
            action, run.target, undo["to_restore"], undo["bytes"], [],
            {k: v for k, v in left.items() if v}, f"undo of run {undoes}", qps=qps,
        )  # fmt: skip
    latest = await store.skips_scan_id(target.id)  # the scan whose skipped rows are shown
    got = await store.plan(target.id, latest, action, where)
    return Plan(
        action,
        target.id,
        got["objects"],
        got["bytes"],
        got["samples"],
        got["skipped"],
        place.text if place else None,
        got["by_label"],
        got["reuploaded"],
        qps,
    )

"""One `act` command: plan it, or apply it as a new run or as the resumption of an unfinished
one (the same command run again, or `--resume`), under the act budget.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from scanner.act.apply import REFUSED, ActProgress, Place, apply_run, reconcile
from scanner.act.plan import Plan, params_of, plan
from scanner.clock import Clock, MonotonicClock
from scanner.config import Config
from scanner.cos.client import HttpClient
from scanner.cos.credentials import provider_of
from scanner.cos.objects import ObjectClient
from scanner.errors import AuthError, ConfigError, OnRetry, ServiceError
from scanner.lease import ActLease, lease
from scanner.limiter import AuditBudget
from scanner.models import Target
from scanner.retry import RetryPolicy
from scanner.store import ActRun, ReportFilter, Store
from scanner.uploaders import user_of

log = logging.getLogger("scanner")


@dataclass(frozen=True, slots=True)
class ActRequest:
    action: str
    where: ReportFilter
    place: Place | None = None
    undoes: int | None = None
    resume: bool = False
    overwrite: bool = False  # restore: put back even where a newer object is at the key
    keys: tuple[str, ...] | None = None  # --keys: only these (where.keys is their digest)


@dataclass(frozen=True, slots=True)
class ActResult:
    run_id: int
    action: str
    outcome: str  # done | interrupted
    resumed: bool
    tally: dict[str, dict[str, int]]


async def plan_act(config: Config, request: ActRequest) -> Plan:
    async with await Store.open(config.store.path) as store:
        if config.scan.user_from_key:  # act --user: uploaders as reports name them
            await store.name_users(user_of(config.scan))
        if request.keys is not None:
            await store.list_keys(request.keys)
        return await plan(
            store,
            Target.of(config.cos),
            request.action,
            request.where,
            request.place,
            request.undoes,
            config.act.qps,
        )


async def _resumable(
    store: Store, target: Target, request: ActRequest, params: dict[str, Any]
) -> ActRun | None:
    """The unfinished run this command resumes (None: it starts a new one)."""
    if request.resume:
        run = await store.unfinished_run(target.id)
        if run is None:
            raise ConfigError(f"--resume: no unfinished act run of {target.id}")
        return run
    return await store.unfinished_run(target.id, request.action, params)


async def _open_run(
    store: Store, target: Target, request: ActRequest, params: dict[str, Any],
    run: ActRun | None,
) -> tuple[ActRun, bool]:  # fmt: skip
    """`run` resumed, or a new run with its selection."""
    if run is not None:
        await store.resume_run(run.id)
        return await store.act_run(run.id), True
    run_id = await store.start_run(
        target.id, request.action, params, where=request.where, undoes=request.undoes
    )
    return await store.act_run(run_id), False


def place_of(run: ActRun) -> Place | None:
    to = run.params.get("to")
    if not to:
        return None
    bucket, _, prefix = str(to).partition("/")
    return Place(bucket, prefix)


@contextlib.asynccontextmanager
async def _objects(
    config: Config,
    stop: anyio.Event,
    clock: Clock,
    on_retry: OnRetry | None,
) -> AsyncIterator[ObjectClient]:
    budget = AuditBudget(config.act.concurrency, config.act.qps, clock)
    async with HttpClient(provider_of(config), connections=config.act.concurrency + 4) as http:
        yield ObjectClient(
            http,
            config.cos,
            retry=RetryPolicy.from_settings(config.retry),
            clock=clock,
            budget=budget,
            stop=stop,
            on_retry=on_retry,
        )


async def _preflight(objects: ObjectClient, place: Place | None) -> bool:
    """Before anything is written: the credentials work, the quarantine bucket exists, and
    whether the bucket keeps versions (then exactly the audited version is acted on). One
    line and no run when not (ConfigError: exit 2; AuthError: exit 77)."""
    versioned = await _versioning(objects, "")
    if place is not None and place.bucket:
        await _versioning(objects, place.bucket)
    return versioned == "Enabled"


async def _versioning(objects: ObjectClient, bucket: str) -> str:
    name = f"bucket {bucket}" if bucket else "the scanned bucket"
    try:
        return await objects.versioning(bucket)
    except ServiceError as exc:
        if exc.status == 404:
            where = "act --to / [act] quarantine_to" if bucket else "[cos] bucket and region"
            raise ConfigError(f"{name} does not exist: check {where}") from None
        raise
    except AuthError as exc:
        if exc.code in REFUSED or not exc.code:
            raise
        if bucket:  # the quarantine bucket: no permission there, nothing can be moved to it
            raise AuthError(
                "cos", f"no permission on {name} ({exc.code}): the quarantine location needs "
                "cos:GetBucketVersioning and cos:PutObject", status=exc.status, code=exc.code,
            ) from None  # fmt: skip
        log.warning(  # no GetBucketVersioning permission: act as on an unversioned bucket
            "cannot read the versioning of %s (%s): acting as on an unversioned bucket",
            name, exc.code,
        )  # fmt: skip
        return ""


async def apply_act(
    config: Config,
    request: ActRequest,
    stop: anyio.Event,
    progress: ActProgress,
    *,
    clock: Clock | None = None,
    on_retry: OnRetry | None = None,
) -> ActResult:
    """Apply (or resume) the run under the target's act lease (a second `act --apply` exits
    busy); the run's row says how it ended, whatever happens."""
    target = Target.of(config.cos)
    async with (
        await Store.open(config.store.path) as store,
        lease(store, ActLease(target), config.scan.lease_stale_after),
        _objects(config, stop, clock or MonotonicClock(), on_retry) as objects,
    ):
        versioned = await _preflight(objects, request.place)
        if config.scan.user_from_key:
            await store.name_users(user_of(config.scan))
        if request.keys is not None:
            await store.list_keys(request.keys)
        params = params_of(request.where, request.place, request.undoes, request.overwrite)
        resuming = await _resumable(store, target, request, params)
        # before a restore selects what is undoable; the run resumed settles its own rows
        await reconcile(store, objects, target.id, resuming.id if resuming else 0, versioned)
        run, resumed = await _open_run(store, target, request, params, resuming)
        state = "failed"
        try:
            progress.total = await store.open_count(run.id)
            finished = await apply_run(
                store, objects, run, place=place_of(run), workers=config.act.concurrency,
                stop=stop, progress=progress, versioned=versioned,
                overwrite=bool(run.params.get("overwrite")),
            )  # fmt: skip
            state = "done" if finished else "interrupted"
        finally:
            with anyio.CancelScope(shield=True):
                cancelled = state == "failed" and stop.is_set()
                await store.finish_run(run.id, "interrupted" if cancelled else state)
        return ActResult(run.id, run.action, state, resumed, await store.run_tally(run.id))


def summary(result: ActResult) -> dict[str, Any]:
    return {
        "act_run": result.run_id,
        "action": result.action,
        "outcome": result.outcome,
        "resumed": result.resumed,
        **result.tally,
    }

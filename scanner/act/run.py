"""One `act` command: plan it, or apply it as a new run or as the resumption of an unfinished
one (the same command run again, or `--resume`), under the act budget.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from scanner.act.apply import ActProgress, Place, apply_run
from scanner.act.plan import Plan, params_of, plan
from scanner.clock import Clock, MonotonicClock
from scanner.config import Config
from scanner.cos.client import HttpClient
from scanner.cos.objects import ObjectClient
from scanner.errors import ConfigError, OnRetry
from scanner.limiter import AuditBudget
from scanner.models import Target
from scanner.retry import RetryPolicy
from scanner.store import ActRun, ReportFilter, Store


@dataclass(frozen=True, slots=True)
class ActRequest:
    action: str
    where: ReportFilter
    place: Place | None = None
    undoes: int | None = None
    resume: bool = False


@dataclass(frozen=True, slots=True)
class ActResult:
    run_id: int
    action: str
    outcome: str  # done | interrupted
    resumed: bool
    tally: dict[str, dict[str, int]]


async def plan_act(config: Config, request: ActRequest) -> Plan:
    async with await Store.open(config.store.path) as store:
        return await plan(
            store,
            Target.of(config.cos),
            request.action,
            request.where,
            request.place,
            request.undoes,
        )


async def _open_run(store: Store, target: Target, request: ActRequest) -> tuple[ActRun, bool]:
    """The unfinished run this command resumes, or a new run with its selection."""
    params = params_of(request.where, request.place, request.undoes)
    if request.resume:
        run = await store.unfinished_run(target.id)
        if run is None:
            raise ConfigError(f"--resume: no unfinished act run of {target.id}")
    else:
        run = await store.unfinished_run(target.id, request.action, params)
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
    assert config.credentials is not None
    budget = AuditBudget(config.act.concurrency, config.act.qps, clock)
    async with HttpClient(config.credentials, connections=config.act.concurrency + 4) as http:
        yield ObjectClient(
            http,
            config.cos,
            retry=RetryPolicy.from_settings(config.retry),
            clock=clock,
            budget=budget,
            stop=stop,
            on_retry=on_retry,
        )


async def apply_act(
    config: Config,
    request: ActRequest,
    stop: anyio.Event,
    progress: ActProgress,
    *,
    clock: Clock | None = None,
    on_retry: OnRetry | None = None,
) -> ActResult:
    """Apply (or resume) the run; the run's row says how it ended, whatever happens."""
    target = Target.of(config.cos)
    async with await Store.open(config.store.path) as store:
        run, resumed = await _open_run(store, target, request)
        state = "failed"
        try:
            async with _objects(config, stop, clock or MonotonicClock(), on_retry) as objects:
                finished = await apply_run(
                    store,
                    objects,
                    run,
                    place=place_of(run),
                    workers=config.act.concurrency,
                    stop=stop,
                    progress=progress,
                )
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

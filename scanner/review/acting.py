"""Decisions that act, when the team wants (`[review] on_block`, `on_approve`).

A block is applied as `act private --decision block` (or `quarantine`, to `[act]
quarantine_to`), an approve as `act restore --decision approve`: through the act machinery
itself (`scanner.act.run`), so each object is acted on exactly once, journaled, under the act
lease (a concurrent `act` run means later, not twice), and with its safety: an object changed
since its audit or uploaded anew is left alone, a restore never overwrites a newer upload. The
selection is the store's, not a queue in memory: a decision made while the page was down, or
whose run was cut short, is acted on at the next pass. Passes run when a decision is saved and
every `poll` seconds.
"""

from __future__ import annotations

import logging

import anyio

from scanner.act.apply import ActProgress
from scanner.act.plan import quarantine_place
from scanner.act.run import ActRequest, apply_act, plan_act
from scanner.config import Config
from scanner.errors import ConfigError, RemoteError, ScanBusyError, StoreError
from scanner.models import Target
from scanner.store import ReportFilter
from scanner.watch import Nudge

log = logging.getLogger(__name__)

ON_BLOCK = ("none", "private", "quarantine")
ON_APPROVE = ("none", "restore")


def decision_acts(config: Config) -> list[ActRequest]:
    """The act runs the settings ask for; ConfigError when one cannot be done."""
    review, wanted = config.review, []
    if review.on_block == "quarantine" and not config.act.quarantine_to:
        raise ConfigError('[review] on_block = "quarantine" needs [act] quarantine_to')
    if review.on_block != "none":
        place = None
        if review.on_block == "quarantine":
            place = quarantine_place(config.act.quarantine_to, Target.of(config.cos))
        wanted.append(ActRequest(review.on_block, ReportFilter(decisions=("block",)), place))
    if review.on_approve == "restore":
        wanted.append(ActRequest("restore", ReportFilter(decisions=("approve",))))
    return wanted


async def act_on_decisions(
    config: Config, requests: list[ActRequest], decided: Nudge, *, poll: float = 30.0
) -> None:
    """Apply what the decisions ask for, at each decision and every `poll` seconds, until
    cancelled. A failure is logged and the next pass tries again."""
    while True:
        for request in requests:
            await _pass(config, request)
        with anyio.move_on_after(poll):
            await decided.wait()  # woken by a decision (or the poll)


async def _pass(config: Config, request: ActRequest) -> None:
    try:
        plan = await plan_act(config, request)
        if not plan.objects:
            return
        result = await apply_act(config, request, anyio.Event(), ActProgress())
    except ScanBusyError:
        log.info("review: another act run holds the target; the decisions wait for it")
    except (RemoteError, StoreError, ConfigError) as exc:
        log.warning("review: %s of decided objects failed (%s); trying again later",
                    request.action, exc)  # fmt: skip
    else:
        states = ", ".join(f"{k} {v}" for k, v in result.tally.get("states", {}).items())
        log.info("review: act run %d (%s of decided objects): %s",
                 result.run_id, request.action, states or "nothing")  # fmt: skip

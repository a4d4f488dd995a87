"""What a scan does with each listed object: skip it (the filter's reason, or "unchanged" when a
nightly rescan finds its last outcome still stands) or audit it. The scan and its dry run
decide every page here. Pure but for the priors it is given."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from scanner.audit.policy import AuditOptions, policy_still_holds
from scanner.models import Decision, ObjectRef, Target
from scanner.scan.plan import ScanPlan
from scanner.store import Prior


def unchanged(ref: ObjectRef, prior: Prior | None, options: AuditOptions) -> bool:
    """Whether a nightly rescan may skip `ref`: same ETag and size as its last outcome, that
    outcome a verdict or a final (not retryable) failure, under a policy that still holds for
    this object's class (a GIF option does not re-audit JPEGs: `fingerprint_for`)."""
    if prior is None or prior.retryable:
        return False
    if prior.etag != ref.etag or prior.size != ref.size:
        return False
    return policy_still_holds(prior.policy, options.fingerprint_for(ref.key, ref.size))


#: The store's outcomes of keys of a target (`Store.priors`): what a nightly compares with.
Priors = Callable[[Target, list[str]], Awaitable[dict[str, Prior]]]


async def decide(
    refs: Sequence[ObjectRef], plan: ScanPlan, priors: Priors | None
) -> list[Decision]:
    """What the scan does with each listed object: skip it (the filter's reason, or
    "unchanged" when `priors` are given and the last outcome still stands), or audit it. The
    scan and its dry run decide every page here."""
    decisions = [plan.filter.decide(ref) for ref in refs]
    if priors is None or not refs:
        return decisions
    known = await priors(plan.target, [r.key for r in refs])
    return [
        Decision(d.ref, "unchanged")
        if not d.skip and unchanged(d.ref, known.get(d.ref.key), plan.options)
        else d
        for d in decisions
    ]

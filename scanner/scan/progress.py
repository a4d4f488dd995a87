"""A scan run's live counters (`Progress`): the pipeline counts, the command line shows them,
the metrics export them, and tests wait on them (`changes`)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from scanner.limiter import AuditBudget
from scanner.models import ImageVerdict, Result
from scanner.watch import Changes


@dataclass
class Progress:
    """Live counters of this run, read by the CLI's progress display."""

    listed: int = 0
    audited: int = 0
    flagged: int = 0
    review: int = 0
    failed: int = 0
    retrying: int = 0
    skipped: int = 0
    pages: int = 0
    requests: int = 0
    maybe_double: int = 0  # images possibly billed twice (resent after a lost answer)
    shared: int = 0  # audited without paying: copies, and keys another scan had just audited
    deferred: int = 0  # keys another live scan has in flight, left for a later pass
    jobs_running: int = 0  # moderation jobs (videos, voice, documents) submitted, not final
    total: int | None = None  # objects the scan will have listed, once known (or estimated)
    listed_before: int = 0  # objects the scan had listed before this run
    done_before: int = 0  # objects it had finished (audited, failed, skipped) before this run
    failures: Counter[str] = field(default_factory=Counter)  # final failures by code
    started: float = field(default_factory=time.monotonic)
    budget: AuditBudget | None = None
    phase: str = "starting"
    changes: Changes = field(default_factory=Changes)  # told after each group is recorded

    def count(self, verdicts: Sequence[ImageVerdict]) -> None:
        """Outcomes just written."""
        for v in verdicts:
            self.maybe_double += v.maybe_double
            self.shared += v.shared_from is not None and not v.failed
            if v.failed:
                if v.retryable:
                    self.retrying += 1
                else:
                    self.failed += 1
                    self.failures[v.code] += 1
            else:
                self.audited += 1
                self.flagged += v.result == Result.SENSITIVE
                self.review += v.result == Result.SUSPICIOUS

    def enter(self, phase: str) -> None:
        """Say what the run does now (the display shows it; waiters are told)."""
        self.phase = phase
        self.changes.changed()

    @property
    def done(self) -> int:
        """Objects of the scan in a final state (before and during this run)."""
        return self.done_before + self.audited + self.failed + self.skipped

    @property
    def rate(self) -> float | None:
        """Images/s of this run; None until there is something to divide (an image, a second)."""
        elapsed = time.monotonic() - self.started
        return self.audited / elapsed if self.audited and elapsed >= 1 else None

"""Interrupting an apply: Ctrl-C presses, counted, and read where stopping is safe.

A signal handler only calls `press()` (one increment). The executor reads `stop` at its safe
points: between waves, between the changes of a rollback, and in a guest's boot wait. Which
presses stop what depends on the step the executor is in:

    IDLE          no change made yet: nothing to undo, so the caller ends the command at once
                  (the CLI's handler raises KeyboardInterrupt instead of pressing)
    APPLYING      a press stops at the next safe point and rolls this apply's changes back
    ROLLING_BACK  a press (beyond the one that asked for the rollback) stops the rollback at
                  the next safe point; what is left is reported
    DONE          the executor has finished (applied, or raised): a press changes nothing
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Step(enum.Enum):
    IDLE = "idle"
    APPLYING = "applying"
    ROLLING_BACK = "rolling back"
    DONE = "done"


@dataclass
class Interrupt:
    step: Step = Step.IDLE
    presses: int = 0
    tolerated: int = 0  # presses the current step already answers

    def press(self) -> None:
        """Called from a signal handler: nothing else happens here."""
        self.presses += 1

    def enter(self, step: Step) -> None:
        """The executor moves to `step`. A rollback answers at most one press (the one that
        asked for it): any later press, or one during a failure's rollback, stops it."""
        self.tolerated = min(self.presses, 1) if step is Step.ROLLING_BACK else self.presses
        self.step = step

    @property
    def stop(self) -> bool:
        """Whether the current step is to stop at its next safe point."""
        return self.presses > self.tolerated

    @property
    def interrupted(self) -> bool:
        """Whether anyone pressed during this run (an interrupted apply rolls back)."""
        return self.presses > 0

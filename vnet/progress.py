"""What a long verb tells its caller while it runs: typed events, no rendering.

`vnet.api.apply`, `vnet.api.verify` and `vnet.api.destroy` take a `Progress` callable and call it with these
events; the CLI draws them (vnet/cli/progress.py), a script may log them or ignore them. Events
about guests come from the threads that wait for them: a callable must be thread-safe.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vnet.resources import Change, Failure


@dataclass(frozen=True)
class LockWaited:
    """`--wait`: another vnet holds the lab's lock; apply or destroy waits for it (nothing
    changed yet)."""

    lab: str


@dataclass(frozen=True)
class WaveStarted:
    """Apply starts wave `index` (1-based) of `waves`: `changes` of the plan's `total`, after
    `done` changes of earlier waves."""

    index: int
    waves: int
    changes: int
    done: int
    total: int


@dataclass(frozen=True)
class ChangeDone:
    """One change carried out (failure None) or refused."""

    change: Change
    failure: Failure | None


class Boot(enum.StrEnum):
    BOOTING = "booting"  # QEMU runs; apply waits for the guest agent
    READY = "ready"  # the agent answered: the guest's network is configured
    FAILED = "failed"  # it did not come up (the change fails)
    ABANDONED = "abandoned"  # interrupted: apply stopped waiting (the rollback stops it)


@dataclass(frozen=True)
class VmBoot:
    """A guest's boot, `seconds` after its QEMU was started."""

    node: str
    state: Boot
    seconds: float = 0.0


@dataclass(frozen=True)
class RollingBack:
    """Undoing this apply's changes: `done` of `total` undone so far."""

    done: int
    total: int


@dataclass(frozen=True)
class ProbesAnswered:
    """Verify: `done` of the `total` probes of this round have their answer; round 0 is the
    first, later rounds send again the must-reach rows that failed."""

    done: int
    total: int
    round: int = 0


Event = LockWaited | WaveStarted | ChangeDone | VmBoot | RollingBack | ProbesAnswered
Progress = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The progress of a caller that asked for none."""

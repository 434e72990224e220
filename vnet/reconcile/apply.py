"""Execute a plan wave by wave; on a failure, undo this apply's changes in reverse order.

Drivers get whole waves (so they can batch) and answer per change: None for done, or the
reason it failed. Which driver handles a change is a registry lookup on the resource kind.

Test hook: VNET_TEST_FAULT=fail:K makes change number K (0-based, in plan order) fail as if the
kernel refused it; VNET_TEST_FAULT=kill:K sends SIGKILL to this process just before change K.
Both exist only for tests of rollback and crash recovery.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from vnet.errors import EX_UNAVAILABLE, VnetError
from vnet.reconcile.plan import Action, Change, Plan


class Driver(Protocol):
    kinds: tuple[str, ...]

    def execute(self, changes: Sequence[Change]) -> list[str | None]:
        """Carry out independent changes; per change None (done) or why it failed."""


class ApplyError(VnetError):
    """The host refused a change; this apply's earlier changes were rolled back (exit 69: the
    cause is on the host, e.g. a kernel feature, a busy device or a stopped daemon)."""

    exit_code = EX_UNAVAILABLE


@dataclass
class ApplyResult:
    done: list[Change] = field(default_factory=list)
    rolled_back: bool = False


def _fault() -> tuple[str, int] | None:
    spec = os.environ.get("VNET_TEST_FAULT", "")
    mode, _, position = spec.partition(":")
    if mode in ("fail", "kill") and position.isdigit():
        return mode, int(position)
    return None


@dataclass
class Executor:
    drivers: dict[str, Driver]
    progress: Callable[[Change, str | None], None] | None = None
    _fault: tuple[str, int] | None = field(default_factory=_fault)
    _count: int = 0

    def _driver(self, change: Change) -> Driver:
        driver = self.drivers.get(change.key[0])
        if driver is None:
            raise VnetError(f"no driver for {change.key[0]} resources")
        return driver

    def _injected(self, wave: Sequence[Change]) -> tuple[Sequence[Change], str | None]:
        """Cut the wave at the injected fault position, if it falls inside this wave."""
        if self._fault is None:
            return wave, None
        mode, position = self._fault
        offset = position - self._count
        if not 0 <= offset < len(wave):
            return wave, None
        if mode == "kill":
            self._run(wave[:offset])
            os.kill(os.getpid(), signal.SIGKILL)
        return wave[:offset], "injected fault (VNET_TEST_FAULT)"

    def _run(self, changes: Sequence[Change]) -> list[tuple[Change, str | None]]:
        results: list[tuple[Change, str | None]] = []
        by_driver: dict[int, list[Change]] = {}
        drivers: dict[int, Driver] = {}
        for change in changes:
            driver = self._driver(change)
            by_driver.setdefault(id(driver), []).append(change)
            drivers[id(driver)] = driver
        for key, group in by_driver.items():
            answers = drivers[key].execute(group)
            results.extend(zip(group, answers, strict=True))
        for change, error in results:
            if self.progress is not None:
                self.progress(change, error)
        return results

    def run_wave(self, wave: Sequence[Change]) -> tuple[list[Change], tuple[Change, str] | None]:
        """Execute one wave; returns (done, first failure)."""
        todo, injected = self._injected(wave)
        results = self._run(todo)
        self._count += len(wave)
        done = [c for c, error in results if error is None]
        failed = [(c, error) for c, error in results if error is not None]
        if injected is not None and len(todo) < len(wave):
            failed.append((wave[len(todo)], injected))
        return done, (failed[0] if failed else None)


def apply_plan(plan: Plan, drivers: dict[str, Driver],
               progress: Callable[[Change, str | None], None] | None = None) -> ApplyResult:
    """Run every wave; on the first failure roll back what was done and raise ApplyError."""
    executor = Executor(drivers, progress)
    result = ApplyResult()
    for wave in plan.waves:
        try:
            done, failure = executor.run_wave(wave)
        except Exception:  # a bug in a driver (exit 70): still undo what this apply did
            rollback(result.done, drivers)
            raise
        result.done.extend(done)
        if failure is not None:
            change, reason = failure
            problems = rollback(result.done, drivers)
            note = "; rolled back this apply's changes" if not problems else (
                "; rollback incomplete: " + "; ".join(problems))
            raise ApplyError(f"{change.action} {change.resource.describe()} failed: {reason}{note}",
                             "fix the cause and run apply again: it converges from any state")
    return result


def rollback(done: list[Change], drivers: dict[str, Driver]) -> list[str]:
    """Undo `done` in reverse order, one change at a time; returns what could not be undone."""
    executor = Executor(drivers)
    executor._fault = None
    problems: list[str] = []
    for change in reversed(done):
        undo = change.inverse()
        _, failure = executor.run_wave([undo])
        if failure is not None and not (undo.action is Action.DELETE and "exist" in failure[1]):
            problems.append(f"{undo.action} {undo.resource.describe()}: {failure[1]}")
    return problems

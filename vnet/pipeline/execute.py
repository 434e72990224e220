"""Execute a plan wave by wave; on a failure, undo this apply's changes in reverse order.

Drivers get whole waves (so they can batch) and answer per change: None for done, or a Failure.
Which driver handles a change is looked up by the resource kind (each mechanism's `kinds`).
A destroy (`undo=False`) runs every wave and reports what failed instead of rolling back.

Test hook: VNET_TEST_FAULT=fail:K makes change number K (0-based, in plan order) fail as if the
kernel refused it; VNET_TEST_FAULT=kill:K sends SIGKILL to this process just before change K;
kill-destroy:K kills a destroy at its K-th wave boundary. They exist only for tests of
rollback and crash recovery.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from vnet.errors import EX_UNAVAILABLE, VnetError
from vnet.resources import Action, Change, Driver, Failure, Plan

Progress = Callable[[Change, Failure | None], None]
INJECTED = Failure("injected fault (VNET_TEST_FAULT)")


class ApplyError(VnetError):
    """The host refused a change; this apply's earlier changes were rolled back (exit 69: the
    cause is on the host, e.g. a kernel feature, a busy device or a stopped daemon)."""

    exit_code = EX_UNAVAILABLE


def _fault(modes: tuple[str, ...]) -> tuple[str, int] | None:
    mode, _, position = os.environ.get("VNET_TEST_FAULT", "").partition(":")
    return (mode, int(position)) if mode in modes and position.isdigit() else None


@dataclass
class Executor:
    drivers: Mapping[str, Driver]
    progress: Progress | None = None
    fault: tuple[str, int] | None = field(default_factory=lambda: _fault(("fail", "kill")))
    count: int = 0

    def _injected(self, wave: Sequence[Change]) -> tuple[Sequence[Change], bool]:
        """Cut the wave at the injected fault position, if it falls inside this wave."""
        if self.fault is None:
            return wave, False
        mode, position = self.fault
        offset = position - self.count
        if not 0 <= offset < len(wave):
            return wave, False
        if mode == "kill":
            self._run(wave[:offset])
            os.kill(os.getpid(), signal.SIGKILL)
        return wave[:offset], True

    def _run(self, changes: Sequence[Change]) -> list[tuple[Change, Failure | None]]:
        groups: dict[int, tuple[Driver, list[Change]]] = {}
        for change in changes:
            driver = self.drivers.get(change.key[0])
            if driver is None:
                raise VnetError(f"no driver for {change.key[0]} resources")
            groups.setdefault(id(driver), (driver, []))[1].append(change)
        results: list[tuple[Change, Failure | None]] = []
        for driver, group in groups.values():
            results.extend(zip(group, driver.execute(group), strict=True))
        if self.progress is not None:
            for change, failure in results:
                self.progress(change, failure)
        return results

    def run_wave(self, wave: Sequence[Change]) -> tuple[list[Change], list[tuple[Change, Failure]]]:
        """Execute one wave: what was done, and what failed."""
        todo, injected = self._injected(wave)
        results = self._run(todo)
        self.count += len(wave)
        done = [c for c, failure in results if failure is None]
        failed = [(c, failure) for c, failure in results if failure is not None]
        if injected:
            failed.append((wave[len(todo)], INJECTED))
        return done, failed


def _describe(change: Change, failure: Failure) -> str:
    return f"{change.action} {change.resource.describe()}: {failure}"


def apply_plan(plan: Plan, drivers: Mapping[str, Driver], progress: Progress | None = None) -> list[Change]:
    """Run every wave; on the first failure roll back what was done and raise ApplyError."""
    executor = Executor(drivers, progress)
    done: list[Change] = []
    for wave in plan.waves:
        try:
            finished, failed = executor.run_wave(wave)
        except Exception:  # a bug in a driver (exit 70): still undo what this apply did
            rollback(done, drivers)
            raise
        done.extend(finished)
        if failed:
            change, failure = failed[0]
            problems = rollback(done, drivers)
            note = "; rolled back this apply's changes" if not problems else (
                "; rollback incomplete: " + "; ".join(problems))
            raise ApplyError(f"{change.action} {change.resource.describe()} failed: {failure}{note}",
                             "fix the cause and run apply again: it converges from any state")
    return done


def rollback(done: list[Change], drivers: Mapping[str, Driver]) -> list[str]:
    """Undo `done` in reverse order, one change at a time; returns what could not be undone."""
    executor = Executor(drivers, fault=None)
    problems: list[str] = []
    for change in reversed(done):
        undo = change.inverse()
        _, failed = executor.run_wave([undo])
        # An undone create whose object is already gone (it went with its namespace) is undone.
        problems += [_describe(c, f) for c, f in failed if not (undo.action is Action.DELETE and f.gone)]
    return problems


def teardown_plan(plan: Plan, drivers: Mapping[str, Driver], boundary: Callable[[], None]) -> list[str]:
    """Destroy: run every wave, whatever fails (`boundary` between waves: the crash-test hook);
    returns what could not be removed."""
    executor = Executor(drivers, fault=None)
    problems: list[str] = []
    for wave in plan.waves:
        boundary()
        _, failed = executor.run_wave(wave)
        problems += [_describe(c, f) for c, f in failed if not f.gone]
    return problems


def kill_points() -> Callable[[], None]:
    """VNET_TEST_FAULT=kill-destroy:K: SIGKILL at destroy's K-th wave boundary."""
    fault = _fault(("kill-destroy",))
    passed = [0]

    def point() -> None:
        if fault is not None and passed[0] == fault[1]:
            os.kill(os.getpid(), signal.SIGKILL)
        passed[0] += 1
    return point

"""Execute a plan wave by wave; on a failure, undo this apply's changes in reverse order.

Drivers get whole waves (so they can batch) and answer per change: None for done, or a Failure.
Which driver handles a change is looked up by the resource kind (each mechanism's `kinds`).
A destroy (`undo=False`) runs every wave and reports what failed instead of rolling back.

Interrupts (vnet/interrupt.py) are read at safe points only: before each wave and after the
last, and between the changes of a rollback (a guest's boot wait reads them too). An
interrupted apply rolls back like a failed one (ApplyInterrupted, exit 130); an interrupted
rollback stops and reports the changes it left on the host.

Test hook: VNET_TEST_FAULT=fail:K makes change number K (0-based, in plan order) fail as if the
kernel refused it; VNET_TEST_FAULT=kill:K sends SIGKILL to this process just before change K;
kill-destroy:K kills a destroy at its K-th wave boundary. They exist only for tests of
rollback and crash recovery.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vnet.errors import EX_INTERRUPTED, EX_UNAVAILABLE, VnetError
from vnet.interrupt import Interrupt, Step
from vnet.progress import ChangeDone, Progress, RollingBack, WaveStarted, ignore
from vnet.resources import Action, Change, Driver, Failure, Plan

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
    progress: Progress | None = None  # ChangeDone per change (rollback and destroy: none)
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
                self.progress(ChangeDone(change, failure))
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


@dataclass(frozen=True)
class Rollback:
    """What a rollback did: the changes it undid, those it left (an interrupt stopped it, or
    their undo failed: `problems` says why), in the order they were made."""

    undone: tuple[Change, ...] = ()
    left: tuple[Change, ...] = ()
    problems: tuple[str, ...] = ()
    stopped: bool = False  # an interrupt stopped it before it was through


def listing(changes: Iterable[Change]) -> list[str]:
    """Per change the object as the host has it now that the change stands, by kind and name."""
    state = {Action.CREATE: "", Action.UPDATE: " (changed, not restored)",
             Action.DELETE: " (deleted, not restored)"}
    return sorted(f"{c.key[0]} {c.key[1]}{state[c.action]}" for c in changes)


SHOWN_NAMES = 6  # per kind, in the summary of what was rolled back (what is left is listed whole)


def _summary(changes: Sequence[Change]) -> str:
    kinds: dict[str, list[str]] = {}
    for change in changes:
        kinds.setdefault(change.key[0], []).append(change.key[1])
    parts = []
    for kind, names in sorted(kinds.items()):
        shown = ", ".join(sorted(names)[:SHOWN_NAMES]) + (", …" if len(names) > SHOWN_NAMES else "")
        parts.append(f"{len(names)} {kind} ({shown})")
    return ", ".join(parts)


def _changes(count: int) -> str:
    return f"{count} change" + ("" if count == 1 else "s")


class ApplyInterrupted(VnetError):
    """Ctrl-C stopped the apply at a safe point and its changes were rolled back; or the
    rollback was interrupted too, and `rollback.left` is what stays on the host (exit 130)."""

    exit_code = EX_INTERRUPTED

    def __init__(self, lab: str, rollback: Rollback, failed: str = "", file: str = "FILE") -> None:
        self.lab, self.rollback, self.failed, self.file = lab, rollback, failed, file
        head = f"lab {lab}: apply interrupted" + (f" ({failed})" if failed else "")
        undone = rollback.undone
        if not rollback.left:
            what = (f"rolled back this apply's {_changes(len(undone))}: {_summary(undone)}" if undone
                    else "it had made no change")
            super().__init__(f"{head}; {what}")
            return
        how = ("the rollback was interrupted too" if rollback.stopped else
               "the rollback could not undo everything (" + "; ".join(rollback.problems) + ")")
        back = f"rolled back {_changes(len(undone))}: {_summary(undone)}; " if undone else ""
        lines = "".join(f"\n    {line}" for line in listing(rollback.left))
        super().__init__(f"{head}; {how}: {back}left on the host by this apply "
                         f"({len(rollback.left)} objects):{lines}",
                         f"`vnet apply {file}` converges from here (it makes what is missing); "
                         f"`vnet destroy --lab {lab}` removes the lab")

    def about(self, file: str) -> ApplyInterrupted:
        """The same, naming the topology file in the hint."""
        return ApplyInterrupted(self.lab, self.rollback, self.failed, file)


def apply_plan(plan: Plan, drivers: Mapping[str, Driver], progress: Progress = ignore,
               interrupt: Interrupt | None = None) -> list[Change]:
    """Run every wave; on the first failure roll back what was done and raise ApplyError; on an
    interrupt (read before each wave and after the last) the same, raising ApplyInterrupted."""
    interrupt = interrupt if interrupt is not None else Interrupt()
    executor = Executor(drivers, progress)
    done: list[Change] = []
    interrupt.enter(Step.APPLYING)
    try:
        for index, wave in enumerate(plan.waves, 1):
            if interrupt.stop:
                break
            progress(WaveStarted(index, len(plan.waves), len(wave), executor.count, len(plan.changes)))
            try:
                finished, failed = executor.run_wave(wave)
            except Exception:  # a bug in a driver (exit 70): still undo what this apply did
                rollback(done, drivers, progress, interrupt)
                raise
            done.extend(finished)
            if failed:
                change, failure = failed[0]
                text = f"{change.action} {change.resource.describe()} failed: {failure}"
                interrupted = interrupt.stop  # pressed during this wave: the press is the story
                undone = rollback(done, drivers, progress, interrupt)
                if interrupted or undone.stopped:
                    raise ApplyInterrupted(plan.lab, undone, failed=text)
                note = "; rolled back this apply's changes" if not undone.problems else (
                    "; rollback incomplete: " + "; ".join(undone.problems))
                raise ApplyError(text + note,
                                 "fix the cause and run apply again: it converges from any state")
        if interrupt.stop:
            raise ApplyInterrupted(plan.lab, rollback(done, drivers, progress, interrupt))
        return done
    finally:
        interrupt.enter(Step.DONE)  # a press from now on has nothing to stop


def rollback(done: list[Change], drivers: Mapping[str, Driver], progress: Progress = ignore,
             interrupt: Interrupt | None = None) -> Rollback:
    """Undo `done` in reverse order, one change at a time (an interrupt stops it between two);
    what was undone and what was not."""
    interrupt = interrupt if interrupt is not None else Interrupt()
    interrupt.enter(Step.ROLLING_BACK)
    executor = Executor(drivers, fault=None)
    undone: list[Change] = []
    refused: list[Change] = []
    problems: list[str] = []
    position = len(done)
    while position > 0 and not interrupt.stop:
        progress(RollingBack(len(done) - position, len(done)))
        position -= 1
        change = done[position]
        undo = change.inverse()
        _, failed = executor.run_wave([undo])
        # An undone create whose object is already gone (it went with its namespace) is undone.
        kept = [(c, f) for c, f in failed if not (undo.action is Action.DELETE and f.gone)]
        problems += [_describe(c, f) for c, f in kept]
        (refused if kept else undone).append(change)
    progress(RollingBack(len(undone) + len(refused), len(done)))
    # done[:position] was never reached; `refused` (newest first) could not be undone
    return Rollback(tuple(reversed(undone)), (*done[:position], *reversed(refused)), tuple(problems),
                    stopped=position > 0)


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

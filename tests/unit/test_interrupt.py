"""Interrupting the executor, with a recording driver (no host): where it stops, what it undoes,
and what it reports as left. The driver presses the interrupt as a SIGINT handler would, while
a change runs; the executor may only react at its safe points."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest

from vnet.interrupt import Interrupt, Step
from vnet.mechanisms.kernel.resources import Address, DeviceEnd, LinuxBridge, Netns, VethPair
from vnet.pipeline.execute import ApplyError, ApplyInterrupted, apply_plan, listing
from vnet.pipeline.plan import make_plan
from vnet.progress import Event, RollingBack, WaveStarted
from vnet.resources import HOST, Action, Change, DesiredState, Failure, ObservedState, Plan, Resource

NS = Netns("vnet-t-h1", "vnet:t:h1")
BR = LinuxBridge("tbr", "vnet:t:tbr")
PAIR = VethPair(DeviceEnd("vnet-t-h1", "eth0", "vnet:t:h1:eth0", mtu=1500),
                DeviceEnd(HOST, "vnabc", "vnet:t:h1:eth0:peer", master="tbr"))
ADDR = Address("vnet-t-h1", "eth0", "198.18.0.1/24", PAIR.key)


def fresh_plan(*resources: Resource) -> Plan:
    return make_plan(DesiredState("t", {r.key: r for r in resources}), ObservedState("t", {}))


@dataclass
class Recorder:
    """A driver for every kind: records what it ran; `when(change)` may press or fail it."""

    interrupt: Interrupt
    ran: list[tuple[Action, str]] = field(default_factory=list)
    when: Callable[[Change], Failure | None] = lambda change: None

    def execute(self, changes: Sequence[Change]) -> list[Failure | None]:
        self.ran += [(c.action, c.key[1]) for c in changes]
        return [self.when(c) for c in changes]


def drivers(recorder: Recorder) -> dict[str, Recorder]:
    return {kind: recorder for kind in ("netns", "bridge", "veth", "address")}


def press_at(recorder: Recorder, action: Action, name: str, presses: int = 1) -> None:
    def when(change: Change) -> None:
        if (change.action, change.key[1]) == (action, name):
            for _ in range(presses):
                recorder.interrupt.press()
    recorder.when = when


def test_the_plan_has_waves() -> None:
    assert len(fresh_plan(NS, BR, PAIR, ADDR).waves) >= 3  # the tests below stop between them


def test_a_press_stops_before_the_next_wave_and_rolls_back() -> None:
    plan = fresh_plan(NS, BR, PAIR, ADDR)
    interrupt = Interrupt()
    recorder = Recorder(interrupt)
    press_at(recorder, Action.CREATE, PAIR.key[1])
    events: list[Event] = []
    with pytest.raises(ApplyInterrupted) as raised:
        apply_plan(plan, drivers(recorder), events.append, interrupt)
    assert (Action.CREATE, ADDR.key[1]) not in recorder.ran, "the wave after the press never ran"
    made = [name for action, name in recorder.ran if action is Action.CREATE]
    undone = [name for action, name in recorder.ran if action is Action.DELETE]
    assert undone == made[::-1], "every change made is undone, newest first"
    assert raised.value.rollback.left == ()
    assert raised.value.exit_code == 130
    assert "rolled back this apply's 3 changes" in raised.value.message
    assert sum(isinstance(e, WaveStarted) for e in events) == 2
    assert RollingBack(3, 3) in events
    assert interrupt.step is Step.DONE


def test_a_second_press_stops_the_rollback_and_lists_what_is_left() -> None:
    plan = fresh_plan(NS, BR, PAIR, ADDR)
    interrupt = Interrupt()
    recorder = Recorder(interrupt)

    def when(change: Change) -> None:
        # the first press while the veth is made, the second while its undo runs
        if change.key == PAIR.key:
            interrupt.press()
    recorder.when = when
    with pytest.raises(ApplyInterrupted) as raised:
        apply_plan(plan, drivers(recorder), interrupt=interrupt)
    rollback = raised.value.rollback
    assert [c.key for c in rollback.undone] == [PAIR.key], "the running undo finishes, then it stops"
    assert {c.key for c in rollback.left} == {NS.key, BR.key}
    assert rollback.stopped
    assert (Action.DELETE, NS.key[1]) not in recorder.ran
    message = raised.value.about("lab.yaml").format()
    assert all(f"\n    {line}" in message for line in listing(rollback.left))
    assert "`vnet apply lab.yaml` converges" in message
    assert "vnet destroy --lab t" in message


def test_two_presses_before_the_rollback_leave_everything() -> None:
    plan = fresh_plan(NS, BR, PAIR, ADDR)
    interrupt = Interrupt()
    recorder = Recorder(interrupt)
    press_at(recorder, Action.CREATE, NS.key[1], presses=2)
    with pytest.raises(ApplyInterrupted) as raised:
        apply_plan(plan, drivers(recorder), interrupt=interrupt)
    assert raised.value.rollback.undone == ()
    assert [action for action, _ in recorder.ran].count(Action.DELETE) == 0
    assert {c.key for c in raised.value.rollback.left} >= {NS.key}


def test_a_press_during_a_failures_rollback_stops_it() -> None:
    plan = fresh_plan(NS, BR, PAIR, ADDR)
    interrupt = Interrupt()
    recorder = Recorder(interrupt)

    def when(change: Change) -> Failure | None:
        if change.action is Action.CREATE and change.key == ADDR.key:
            return Failure("refused")
        if change.action is Action.DELETE and change.key == PAIR.key:
            interrupt.press()  # the first undo of the failure's rollback
        return None
    recorder.when = when
    with pytest.raises(ApplyInterrupted) as raised:
        apply_plan(plan, drivers(recorder), interrupt=interrupt)
    assert "refused" in raised.value.message
    assert {c.key for c in raised.value.rollback.left} == {NS.key, BR.key}


def test_without_a_press_a_failure_rolls_back_as_before() -> None:
    plan = fresh_plan(NS, BR, PAIR, ADDR)
    recorder = Recorder(Interrupt())
    recorder.when = lambda change: Failure("refused") if change.key == ADDR.key else None
    with pytest.raises(ApplyError, match="rolled back this apply's changes"):
        apply_plan(plan, drivers(recorder))
    assert [a for a, _ in recorder.ran].count(Action.DELETE) == 3


def test_a_press_in_the_last_wave_rolls_back_all_of_it() -> None:
    plan = fresh_plan(NS, BR, PAIR, ADDR)
    interrupt = Interrupt()
    recorder = Recorder(interrupt)
    press_at(recorder, Action.CREATE, ADDR.key[1])
    with pytest.raises(ApplyInterrupted) as raised:
        apply_plan(plan, drivers(recorder), interrupt=interrupt)
    assert len(raised.value.rollback.undone) == 4


def test_the_steps_a_press_meets() -> None:
    interrupt = Interrupt()
    assert interrupt.step is Step.IDLE  # the CLI's handler raises KeyboardInterrupt here
    interrupt.enter(Step.APPLYING)
    interrupt.press()
    assert interrupt.stop
    interrupt.enter(Step.ROLLING_BACK)
    assert not interrupt.stop, "the rollback is what the first press asked for"
    interrupt.press()
    assert interrupt.stop

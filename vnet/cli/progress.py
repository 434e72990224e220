"""What `apply` and `verify` show while they work, and what Ctrl-C does during an apply.

Progress (vnet/progress.py events) is drawn with rich on standard error, and only when standard
error is a terminal: piped, logged or `--json` runs get none of it, and standard output carries
only the result. A refused change is said on standard error in any case.

Ctrl-C during an apply: the SIGINT handler only presses the apply's Interrupt (vnet/interrupt.py);
the executor stops at its next safe point. Before the executor has started there is nothing to
undo, and the handler raises KeyboardInterrupt as Python's own would.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

import click

from vnet.host.signals import handling
from vnet.interrupt import Interrupt, Step
from vnet.progress import (
    Boot,
    ChangeDone,
    Event,
    LockWaited,
    ProbesAnswered,
    Progress,
    RollingBack,
    VmBoot,
    WaveStarted,
)

if TYPE_CHECKING:
    from rich.progress import Progress as Bars
    from rich.progress import TaskID

BOOT_TEXT = {Boot.BOOTING: "booting…", Boot.READY: "ready", Boot.FAILED: "did not come up",
             Boot.ABANDONED: "boot abandoned (interrupted)"}


def _refused(event: Event) -> None:
    if isinstance(event, ChangeDone) and event.failure is not None:
        change = event.change
        click.echo(f"failed {change.action} {change.resource.describe()}: {event.failure}", err=True)


class Display:
    """Draws events as rich progress rows on standard error: the apply's waves, one row per
    guest booting, the rollback, verify's probes. Events come from worker threads too."""

    def __init__(self) -> None:
        from rich.console import Console  # noqa: PLC0415 (rich only when drawing)
        from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: PLC0415
        from rich.progress import Progress as Bars  # noqa: PLC0415

        self.console = Console(stderr=True, highlight=False, emoji=False)
        self.bars: Bars = Bars(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                               TimeElapsedColumn(), console=self.console)
        self.rows: dict[str, TaskID] = {}
        self.lock = threading.Lock()
        self.wave: WaveStarted | None = None
        self.changes = 0  # done, of the apply's

    def __enter__(self) -> Display:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()  # draws the last state and leaves it on the terminal

    def _row(self, name: str, description: str, total: float | None, completed: int) -> None:
        with self.lock:
            if name not in self.rows:
                self.rows[name] = self.bars.add_task(description, total=total, completed=completed)
                return
            self.bars.update(self.rows[name], description=description, total=total, completed=completed)

    def _changes(self) -> None:
        wave = self.wave
        if wave is not None:
            self._row("apply", f"wave {wave.index}/{wave.waves} · {self.changes}/{wave.total} changes",
                      wave.total, self.changes)

    def __call__(self, event: Event) -> None:
        if isinstance(event, LockWaited):
            self._row("lock", f"waiting for another vnet to finish with lab {event.lab}…", None, 0)
        elif isinstance(event, WaveStarted):
            if event.index == 1 and "lock" in self.rows:
                self._row("lock", "waited for the lab's lock", 1, 1)
            self.wave, self.changes = event, event.done
            self._changes()
        elif isinstance(event, ChangeDone):
            self.changes += 1  # from the main thread (the executor's), as WaveStarted
            self._changes()
            if event.failure is not None:
                change = event.change
                self.console.print(f"[red]failed[/] {change.action} {change.resource.describe()}: "
                                   f"{event.failure}")
        elif isinstance(event, VmBoot):
            finished = event.state is not Boot.BOOTING
            timing = f" {event.seconds:.1f} s" if finished else ""
            self._row(f"vm {event.node}", f"{event.node} {BOOT_TEXT[event.state]}{timing}",
                      1 if finished else None, 1 if finished else 0)
        elif isinstance(event, RollingBack):
            more = "" if event.done == event.total else " · Ctrl-C again stops it and lists what is left"
            self._row("rollback", f"rolling back {event.done}/{event.total} changes{more}",
                      event.total or 1, event.done if event.total else 1)
        elif isinstance(event, ProbesAnswered):
            again = f" (again, round {event.round + 1})" if event.round else ""
            self._row(f"probes {event.round}", f"{event.done}/{event.total} probes answered{again}",
                      event.total or 1, event.done if event.total else 1)


@contextlib.contextmanager
def shown() -> Iterator[Progress]:
    """The progress callable for an apply or verify: drawn on a terminal, else refusals only."""
    if not sys.stderr.isatty():
        yield _refused
        return
    with Display() as display:
        yield display


@contextlib.contextmanager
def interruptible(interrupt: Interrupt) -> Iterator[None]:
    """SIGINT presses `interrupt` while the block runs (the main thread's handler is restored)."""
    def handler(number: int, frame: FrameType | None) -> None:
        if interrupt.step is Step.IDLE:
            raise KeyboardInterrupt  # no change made yet: nothing to roll back
        interrupt.press()

    with handling(handler, signal.SIGINT):
        yield

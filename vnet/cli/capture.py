"""`vnet capture`: packets of a lab's interfaces into a pcapng file, a pipe, or one line each."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING, BinaryIO

import click

from vnet.cli.app import cli
from vnet.cli.output import api
from vnet.errors import InputError, UsageError
from vnet.host.signals import handling
from vnet.interrupt import Interrupt
from vnet.topology import load

if TYPE_CHECKING:
    from vnet.capture.session import Target
    from vnet.capture.socket import Packet


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("targets", nargs=-1, required=True, metavar="TARGET...")
@click.option("-w", "--write", "out", metavar="OUT",
              help="Write pcapng to OUT; `-` is standard output (e.g. `| wireshark -k -i -`).")
@click.option("-c", "--count", type=click.IntRange(min=1), default=None, metavar="N",
              help="End after N packets (on all interfaces together).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None, metavar="S",
              help="End after S seconds.")
@click.option("--both", is_flag=True,
              help="Also capture the other end of each veth (its bridge or OVS port), as one more interface.")
def capture(file: str, targets: tuple[str, ...], out: str | None, count: int | None,
            duration: float | None, both: bool) -> None:
    """Capture packets on TARGETs (NODE:IFACE) of FILE's lab, into one pcapng file with -w.

    A netns node's interface is captured inside its namespace, a VM's or tap node's on its
    TAP. Without -w, one line per packet. Ends after -c packets, --duration seconds, or
    Ctrl-C; the file is complete in each case (the kernel's counters at its end), and a summary
    goes to standard error."""
    if out == "-" and sys.stdout.isatty():
        raise UsageError("refusing to write pcapng (binary) to a terminal",
                         f"pipe it (vnet capture {file} {' '.join(targets)} -w - | wireshark -k -i -) "
                         "or give a file")
    lab = load(file)
    found = api.capture_targets(lab, targets, both)  # 65, 77, 69 before a file is made
    interrupt = Interrupt()

    def stop(_number: int, _frame: FrameType | None) -> None:
        interrupt.press()  # the loop ends at once and completes the file

    with _output(out) as stream, handling(stop, signal.SIGINT, signal.SIGTERM):
        summary = api.capture(lab, found, stream, count=count, duration=duration,
                              on_packet=None if out is not None else _Lines(), flush=out == "-",
                              interrupt=interrupt, ready=_announce)
    if summary.reader_gone:  # Python's last flush of standard output must not fail either
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    for name in summary.gone:
        click.echo(f"note: {name} went down or away during the capture", err=True)
    click.echo(f"{summary.packets} packets captured on {summary.interfaces} interfaces, "
               f"{summary.dropped} dropped by the kernel", err=True)


@contextlib.contextmanager
def _output(out: str | None) -> Iterator[BinaryIO | None]:
    if out is None or out == "-":
        yield None if out is None else sys.stdout.buffer
        return
    try:
        stream = open(out, "wb")  # noqa: SIM115 (closed below, after the statistics blocks)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror}",
                         "give a file in a writable directory") from None
    with stream:
        yield stream


def _announce(targets: tuple[Target, ...]) -> None:
    click.echo(f"capturing on {', '.join(t.name for t in targets)}; Ctrl-C ends", err=True)


class _Lines:
    """One line per packet: seconds since the first, interface, direction, length, what it is."""

    def __init__(self) -> None:
        self.first: int | None = None

    def __call__(self, target: Target, packet: Packet) -> None:
        from vnet.capture.decode import summary  # noqa: PLC0415 (only without -w)
        from vnet.capture.pcapng import Direction  # noqa: PLC0415

        self.first = packet.ns if self.first is None else self.first
        way = "out" if packet.direction is Direction.OUTBOUND else "in "
        sys.stdout.write(f"{(packet.ns - self.first) / 1e9:10.6f} {target.name} {way} "
                         f"{packet.length:5d} {summary(packet.data)}\n")
        sys.stdout.flush()  # a pipe's reader sees each packet as it comes

"""QEMU guests of a lab, as resources."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import ClassVar

from vnet.resources import Fact, Resource, ResourceKey


@dataclass(frozen=True)
class Vm(Resource):
    """A QEMU guest. Its whole command line is its configuration: any change restarts it.

    `pid` is what observe found (0 on the desired side) and takes no part in the diff."""

    kind: ClassVar[str] = "vm"
    rank: ClassVar[int] = 90
    binds_device: ClassVar[bool] = True
    starts_last: ClassVar[bool] = True
    RECREATE: ClassVar[str] = "restart"
    lab: str
    node: str
    argv: tuple[str, ...]
    taps: tuple[ResourceKey, ...] = ()
    ready_wait: bool = True  # apply waits until the guest agent answers (the tiny image)
    seed: tuple[tuple[str, str], ...] = ()  # cloud-init seed files (name, text) for disk images
    # Its QMP (and agent) sockets exist: without them vnet cannot stop it gracefully, probe from
    # it or exec in it (e.g. the run directory was removed by hand), so it is restarted.
    reachable: bool = True
    pid: int = field(default=0, compare=False)

    @property
    def key(self) -> ResourceKey:
        return self.key_of(self.node)

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return self.taps

    def origin(self, lab: str) -> str:
        return self.node

    def facts(self, lab: str) -> tuple[Fact, ...]:
        """Its pid, accelerator and serial log; each NIC's MAC, said of the TAP it is on."""
        options = dict(itertools.pairwise(self.argv))
        out = [Fact(None, "pid", str(self.pid)), Fact(None, "accel", options.get("-accel", "?"))]
        serial = _serial_log(self.argv)
        if serial is not None:
            out.append(Fact(None, "serial log", serial))
        tap = ""
        for option, value in itertools.pairwise(self.argv):
            settings = dict(part.partition("=")[::2] for part in value.split(",")[1:])
            if option == "-netdev":
                tap = settings.get("ifname", "")
            elif option == "-device" and value.startswith("virtio-net") and tap and "mac" in settings:
                out.append(Fact(("tap", tap), "mac", settings["mac"]))
        return tuple(out)

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, Vm)
        return frozenset(f for f in ("argv", "reachable") if getattr(self, f) != getattr(other, f))


def _serial_log(argv: tuple[str, ...]) -> str | None:
    """The serial log on a QEMU command line: `logfile=` of the `-chardev` the serial port is on
    (vnet/mechanisms/qemu/process.py, serial_args), or `-serial file:PATH` (an older vnet's)."""
    options = list(itertools.pairwise(argv))
    serial = next((value for option, value in options if option == "-serial"), "")
    if serial.startswith("file:"):
        return serial.removeprefix("file:")
    for option, value in options:
        if option == "-chardev":
            parts = value.replace(",,", "\0").split(",")  # QEMU escapes a comma by doubling it
            settings = dict(p.replace("\0", ",").partition("=")[::2] for p in parts[1:])
            if f"chardev:{settings.get('id')}" == serial and "logfile" in settings:
                return settings["logfile"]
    return None

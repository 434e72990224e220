"""QEMU guests of a lab, as resources."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from vnet.resources import Resource, ResourceKey


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

    def differing(self, other: Resource) -> frozenset[str]:
        assert isinstance(other, Vm)
        return frozenset(f for f in ("argv", "reachable") if getattr(self, f) != getattr(other, f))

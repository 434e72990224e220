"""What one vnet command holds while it runs: the connections mechanisms open (the kernel's
netlink sockets, the OVSDB client, the SR-IOV host), the notices for the user, and the scratch
of one observation (the kernel's scan of the lab, which other mechanisms read their devices
from). It is the `Context` mechanisms get (vnet/mechanisms/base.py)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vnet.host import ovs_daemon
from vnet.interrupt import Interrupt
from vnet.mechanisms.kernel.host import KernelHost
from vnet.mechanisms.kernel.observe import kernel_host
from vnet.progress import Progress, ignore

T = TypeVar("T")
SYSTEM_OVSDB = ovs_daemon.OvsPaths.system().remote


def default_ovsdb() -> str:
    return os.environ.get("VNET_OVSDB") or SYSTEM_OVSDB


@dataclass
class Session:
    ovsdb: str = field(default_factory=default_ovsdb)
    notices: list[str] = field(default_factory=list)
    teardown: bool = False  # observing for destroy: what goes with its namespace is not read
    progress: Progress = ignore  # the caller's, for what drivers report (guests booting)
    interrupt: Interrupt = field(default_factory=Interrupt)  # read by drivers' long waits
    _connections: dict[str, Any] = field(default_factory=dict)
    _scratch: dict[str, Any] = field(default_factory=dict)

    def connection(self, name: str, make: Callable[[], T]) -> T:
        if name not in self._connections:
            self._connections[name] = make()
        found: T = self._connections[name]
        return found

    def scratch(self, name: str, make: Callable[[], T]) -> T:
        if name not in self._scratch:
            self._scratch[name] = make()
        found: T = self._scratch[name]
        return found

    def new_observation(self) -> None:
        self._scratch.clear()

    @property
    def host(self) -> KernelHost:
        """The kernel's netlink sockets (verification and trace read the host through them)."""
        return kernel_host(self)

    def close(self) -> None:
        for made in reversed(list(self._connections.values())):
            with contextlib.suppress(Exception):  # closing must not hide what the command raised
                getattr(made, "close", lambda: None)()
        self._connections.clear()
        self._scratch.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

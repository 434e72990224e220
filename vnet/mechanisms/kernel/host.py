"""One handle on the host's kernel networking: a netlink socket per namespace, device lookups.

Sockets are opened on first use by entering the namespace (setns on this thread) and are
kept: a socket stays in the namespace it was opened in, so later requests need no setns.
Device lists are dumped on demand and cached until `invalidate`.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from vnet.errors import NotPermittedError, UnavailableError, VnetError
from vnet.host import netns
from vnet.mechanisms.kernel import ethtool
from vnet.netlink import bridge_vlan
from vnet.netlink.constants import AF_INET
from vnet.netlink.errors import NetlinkError
from vnet.netlink.parse import AddrMsg, LinkMsg, RouteMsg
from vnet.netlink.socket import NetlinkSocket
from vnet.resources import HOST

P = ParamSpec("P")
R = TypeVar("R")


class KernelError(UnavailableError):
    """The kernel refused a read vnet needed (its netlink answer, in vnet's terms)."""


def translated(call: Callable[P, R]) -> Callable[P, R]:
    """vnet.netlink's errors as vnet errors: this is the kernel mechanism's boundary."""
    @functools.wraps(call)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return call(*args, **kwargs)
        except NetlinkError as exc:
            if exc.errno in (errno.EPERM, errno.EACCES):
                raise NotPermittedError(f"the kernel refused: {exc}", "run vnet as root") from None
            raise KernelError(f"the kernel refused: {exc}") from None
    return wrapper


class KernelHost:
    def __init__(self) -> None:
        self._sockets: dict[str, NetlinkSocket] = {}
        self._links: dict[str, dict[str, LinkMsg]] = {}
        self._controls: dict[str, socket.socket] = {}
        # Bridges this process retired for a reaper that starts when it closes (a destroy's
        # reaper would otherwise hold the RTNL lock while destroy checks that the lab is gone).
        self.retired: dict[str, set[str]] = {}
        self.on_close: list[Callable[[], None]] = []

    def control(self, namespace: str) -> socket.socket:
        """A datagram socket inside `namespace`, for device ioctls (ethtool)."""
        sock = self._controls.get(namespace)
        if sock is None:
            if namespace == HOST:
                sock = ethtool.control_socket()
            else:
                with netns.entered(namespace):
                    sock = ethtool.control_socket()
            self._controls[namespace] = sock
        return sock

    def tx_checksum(self, namespace: str, device: str) -> bool | None:
        try:
            return ethtool.tx_checksum(self.control(namespace), device)
        except OSError:
            return None

    def socket(self, namespace: str) -> NetlinkSocket:
        sock = self._sockets.get(namespace)
        if sock is None:
            if namespace == HOST:
                sock = NetlinkSocket()
            else:
                with netns.entered(namespace):  # one entry for both sockets: observe needs both
                    sock = NetlinkSocket()
                    if namespace not in self._controls:
                        self._controls[namespace] = ethtool.control_socket()
            self._sockets[namespace] = sock
        return sock

    def adopt(self, namespace: str, sock: NetlinkSocket) -> None:
        """Keep a socket that was opened inside `namespace` while it was being created."""
        self.forget(namespace)
        self._sockets[namespace] = sock

    def forget(self, namespace: str) -> None:
        sock = self._sockets.pop(namespace, None)
        if sock is not None:
            sock.close()
        control = self._controls.pop(namespace, None)
        if control is not None:
            control.close()
        self._links.pop(namespace, None)

    @translated
    def links(self, namespace: str) -> dict[str, LinkMsg]:
        """name -> device, for one namespace (cached until `invalidate`)."""
        if namespace not in self._links:
            self._links[namespace] = {link.name: link for link in self.socket(namespace).links()}
        return self._links[namespace]

    @translated
    def addresses(self, namespace: str) -> list[AddrMsg]:
        return self.socket(namespace).addresses()

    @translated
    def routes(self, namespace: str) -> list[RouteMsg]:
        return self.socket(namespace).routes()

    @translated
    def forwarding(self, namespace: str, family: int = AF_INET) -> bool | None:
        return self.socket(namespace).forwarding(family)

    @translated
    def port_vlans(self) -> dict[int, tuple[tuple[int, bool, bool], ...]]:
        """VLANs of the host's bridge ports (VLAN-filtering bridges), by ifindex."""
        return bridge_vlan.port_vlans(self.socket(HOST).dump(bridge_vlan.dump_port_vlans()))

    def invalidate(self, namespace: str | None = None) -> None:
        if namespace is None:
            self._links.clear()
        else:
            self._links.pop(namespace, None)

    def index(self, namespace: str, name: str) -> int:
        link = self.links(namespace).get(name)
        if link is None:
            self.invalidate(namespace)
            link = self.links(namespace).get(name)
        if link is None:
            where = "the host" if namespace == HOST else f"namespace {namespace}"
            raise VnetError(f"device {name} not found in {where}")
        return link.index

    def namespace_fd(self, namespace: str) -> int:
        return os.open(os.path.join(netns.NETNS_RUN_DIR, namespace), os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        for namespace in set(self._sockets) | set(self._controls):
            self.forget(namespace)
        pending, self.on_close = self.on_close, []
        for call in pending:
            call()

    def __enter__(self) -> KernelHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

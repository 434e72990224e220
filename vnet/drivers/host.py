"""One handle on the host's kernel networking: a netlink socket per namespace, device lookups.

Sockets are opened on first use by entering the namespace (setns on this thread) and are
kept: a socket stays in the namespace it was opened in, so later requests need no setns.
Device lists are dumped on demand and cached until `invalidate`.
"""

from __future__ import annotations

import os
import socket
import zlib

from vnet.drivers import ethtool, netns
from vnet.drivers.netlink.parse import LinkMsg
from vnet.drivers.netlink.socket import NetlinkSocket
from vnet.errors import VnetError
from vnet.resources import HOST


def lab_group(lab: str) -> int:
    """The device group (IFLA_GROUP) of a lab's host devices: batch deletion, `ip link show group`."""
    return 0x56000000 | (zlib.crc32(lab.encode()) & 0x00FFFFFF)


class KernelHost:
    def __init__(self) -> None:
        self._sockets: dict[str, NetlinkSocket] = {}
        self._links: dict[str, dict[str, LinkMsg]] = {}
        self._controls: dict[str, socket.socket] = {}

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

    def links(self, namespace: str) -> dict[str, LinkMsg]:
        """name -> device, for one namespace (cached until `invalidate`)."""
        if namespace not in self._links:
            self._links[namespace] = {link.name: link for link in self.socket(namespace).links()}
        return self._links[namespace]

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

    def __enter__(self) -> KernelHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

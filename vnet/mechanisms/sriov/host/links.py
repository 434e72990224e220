"""Moving and renaming the netdevs of VFs (into a netns node, and back) and of representors.

`VfLinks` is what the SR-IOV driver and observe use; `KernelVfLinks` implements it with vnet's
own rtnetlink codec through the session's KernelHost. One RTM_NEWLINK moves a netdev into a
namespace, renames it there and sets its ifalias (the lab's mark plus what is needed to undo it):
a crash cannot leave a moved netdev without its mark. Moving it back clears the alias and
restores the name it had. A netdev must be down to be renamed; it is brought up afterwards.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from vnet.host import netns
from vnet.mechanisms.kernel.host import KernelHost
from vnet.mechanisms.sriov.host.errors import kernel_error
from vnet.netlink import wire
from vnet.netlink.errors import NetlinkError
from vnet.resources import HOST
from vnet.topology.names import VF_REF


@dataclass(frozen=True)
class Netdev:
    name: str
    alias: str
    mtu: int
    up: bool


class VfLinks(Protocol):
    def devices(self, namespace: str) -> dict[str, Netdev]:
        """name -> netdev, in a namespace (HOST: the host's own)."""

    def move_in(self, name: str, namespace: str, new_name: str, alias: str, mtu: int | None) -> None:
        """Move host netdev `name` into `namespace` as `new_name` with `alias`, then set it up."""

    def move_out(self, namespace: str, name: str, new_name: str) -> None:
        """Move `name` (set down, alias cleared) from `namespace` to the host as `new_name`."""

    def configure(self, namespace: str, name: str, mtu: int | None, up: bool) -> None: ...

    def rename(self, name: str, new_name: str, alias: str, up: bool) -> None:
        """Rename host netdev `name` (down first) and set its alias; up afterwards if `up`."""


class KernelVfLinks:
    def __init__(self, host: KernelHost) -> None:
        self.host = host

    def devices(self, namespace: str) -> dict[str, Netdev]:
        return {name: Netdev(name, link.alias or "", link.mtu, link.up)
                for name, link in self.host.links(namespace).items()}

    def _check(self, action: str, namespace: str, messages: list[bytes]) -> None:
        try:
            self.host.socket(namespace).check(messages)
        except NetlinkError as exc:
            raise kernel_error(action, OSError(exc.errno, exc.message)) from None
        finally:
            self.host.invalidate(namespace)

    def move_in(self, name: str, namespace: str, new_name: str, alias: str, mtu: int | None) -> None:
        index = self._index(HOST, name)
        fd = self.host.namespace_fd(namespace)
        try:
            self._check(f"moving {name} into namespace {namespace} as {new_name}", HOST,
                        [wire.new_link(index=index, up=False),
                         wire.new_link(index=index, ifname=new_name, netns_fd=fd, alias=alias, mtu=mtu)])
        finally:
            os.close(fd)
        self.configure(namespace, new_name, None, True)

    def move_out(self, namespace: str, name: str, new_name: str) -> None:
        index = self._index(namespace, name)
        home = netns.current()  # this thread is in the host's namespace
        try:
            self._check(f"moving {name} from namespace {namespace} back to the host as {new_name}",
                        namespace, [wire.new_link(index=index, up=False, alias=""),
                                    wire.new_link(index=index, ifname=new_name, netns_fd=home)])
        finally:
            os.close(home)
        self.host.invalidate(HOST)

    def configure(self, namespace: str, name: str, mtu: int | None, up: bool) -> None:
        self._check(f"configuring {name} in {namespace or 'the host'}", namespace,
                    [wire.new_link(ifname=name, mtu=mtu, up=up)])

    def rename(self, name: str, new_name: str, alias: str, up: bool) -> None:
        index = self._index(HOST, name)
        self._check(f"renaming {name} to {new_name}", HOST,
                    [wire.new_link(index=index, up=False),
                     wire.new_link(index=index, ifname=new_name, alias=alias, up=up or None)])

    def _index(self, namespace: str, name: str) -> int:
        self.host.invalidate(namespace)
        link = self.host.links(namespace).get(name)
        if link is None:
            where = "the host" if namespace == HOST else f"namespace {namespace}"
            raise kernel_error(f"finding netdev {name} in {where}", OSError(19, os.strerror(19)))
        return link.index



# --- marks ---------------------------------------------------------------------------------------
# A moved VF netdev: `vnet:<lab>:<node>:<iface>:<pf>/vf<n>:<original name>`; a renamed representor:
# `vnet:<lab>:<pf>/vf<n>:representor:<original name>`. Netdev names never contain `:`.

def netdev_alias(mark: str, ref: str, original: str) -> str:
    return f"{mark}:{ref}:{original}"


def parse_netdev_alias(lab: str, alias: str) -> tuple[str, str, str] | None:
    """(mark, `<pf>/vf<n>`, original name) of a VF netdev vnet moved for `lab`, else None."""
    parts = alias.split(":")
    if len(parts) != 6 or parts[:2] != ["vnet", lab] or VF_REF.match(parts[4]) is None or not parts[5]:
        return None
    return ":".join(parts[:4]), parts[4], parts[5]


def rep_alias(mark: str, original: str) -> str:
    return f"{mark}:{original}"


def parse_rep_alias(mark: str, alias: str) -> str | None:
    """The original name of a representor vnet renamed with `mark`, else None."""
    original = alias.removeprefix(f"{mark}:") if alias.startswith(f"{mark}:") else ""
    return original if original and ":" not in original else None

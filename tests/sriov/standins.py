"""STAND-INS for VF netdevs: real TAP devices (this kernel has no SR-IOV, dummy or netdevsim).

When the FAKE kernel (tests/sriov/fakes.py) creates a VF netdev in its fake sysfs tree, a
persistent TAP of the same name is created in the real host namespace, and removed with the VF.
So vnet's real rtnetlink code moves a real device into the node's real namespace, renames and
marks it there, puts the addresses on it, and moves it back on destroy. The fake sysfs lists a
VF netdev only while its TAP is in the host's namespace, as the real sysfs does.

What differs from a real VF netdev: a TAP has no carrier (no traffic is tested), and a TAP dies
with a deleted namespace where a real VF netdev returns to the host namespace.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field

from vnet.mechanisms.kernel.tap import create_tap
from vnet.netlink import wire
from vnet.netlink.socket import NetlinkSocket


def in_host(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


@dataclass
class TapStandIns:
    """NetdevHooks for FakeKernel: real TAPs named like the fake VF netdevs."""

    made: set[str] = field(default_factory=set)
    # (netdev, whether it was back in the host namespace when its VF was removed)
    removals: list[tuple[str, bool]] = field(default_factory=list)

    def added(self, netdev: str) -> None:
        create_tap(netdev, None, None, False, lambda _: None)
        self.made.add(netdev)

    def removed(self, netdev: str) -> None:
        present = in_host(netdev)
        self.removals.append((netdev, present))
        if present:
            _delete(netdev)

    def visible(self, netdev: str) -> bool:
        return in_host(netdev)

    def cleanup(self) -> None:
        for name in sorted(self.made):
            if in_host(name):
                _delete(name)


def _delete(name: str) -> None:
    with NetlinkSocket() as sock:
        ack = sock.transact([wire.del_link(ifname=name)])[0]
    if ack.errno not in (0, errno.ENODEV):
        raise ack.error()

"""Kernel feature probes, run inside a private scratch namespace so the host is never touched.

Each probe answers once per process (cached). `require(desired)` raises UnavailableError
(exit 69) naming the missing feature and the objects that need it, before any change.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable

from vnet.drivers import netns
from vnet.drivers.netlink import wire
from vnet.drivers.netlink.socket import NetlinkSocket
from vnet.errors import UnavailableError
from vnet.resources import DesiredState, LinuxBridge, Resource


def _in_scratch_namespace(probe: Callable[[NetlinkSocket], bool]) -> bool:
    name = f"vnet-probe-{os.getpid()}"
    result: list[bool] = []

    def run(_: str) -> None:
        with NetlinkSocket() as sock:
            result.append(probe(sock))
        raise _Done

    with contextlib.suppress(_Done):
        netns.create([name], run)
    return bool(result and result[0])


class _Done(Exception):
    """Ends a scratch namespace before it is ever named (nothing is left behind)."""


@functools.cache
def bridge_vlan_filtering() -> bool:
    def probe(sock: NetlinkSocket) -> bool:
        ack = sock.transact([wire.new_link(create=True, ifname="probe0", kind="bridge",
                                           bridge=wire.BridgeOptions(vlan_filtering=True))])
        return ack[0].ok
    return _in_scratch_namespace(probe)


@functools.cache
def ovs_kernel_datapath() -> bool:
    """The kernel OVS datapath is usable: the `ovs_datapath` generic netlink family exists."""
    from pyroute2.netlink.exceptions import NetlinkError  # noqa: PLC0415 (pyroute2 is slow to import)
    from pyroute2.netlink.generic import GenericNetlinkSocket  # noqa: PLC0415

    sock = GenericNetlinkSocket()
    try:
        sock.bind("ovs_datapath", None)
        return True
    except NetlinkError:
        return False
    finally:
        sock.close()


# feature name -> (probe, which resources need it, how to get it)
FEATURES: dict[str, tuple[Callable[[], bool], Callable[[Resource], bool], str]] = {
    "bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)": (
        bridge_vlan_filtering,
        lambda r: isinstance(r, LinuxBridge) and r.vlan_filtering,
        "use a kernel with bridge VLAN filtering, or an OVS switch for VLANs",
    ),
}


def require(desired: DesiredState) -> None:
    """Raise UnavailableError if the lab needs a kernel feature this host lacks."""
    for feature, (available, needs, fix) in FEATURES.items():
        users = sorted(r.describe() for r in desired.resources.values() if needs(r))
        if users and not available():
            raise UnavailableError(f"this kernel lacks {feature}, which lab {desired.lab} needs for "
                                   f"{', '.join(users[:3])}" + (" …" if len(users) > 3 else ""), fix)

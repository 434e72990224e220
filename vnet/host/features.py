"""Kernel feature probes, run inside a private scratch namespace so the host is never touched.

Each probe answers once per process (cached); the mechanisms turn a missing feature their
objects need into an error before any change (exit 69).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable

from vnet.host import netns
from vnet.netlink import wire
from vnet.netlink.socket import NetlinkSocket


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

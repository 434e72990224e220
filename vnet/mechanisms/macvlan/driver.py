"""The kernel side of a macvlan: created straight into the node's namespace on its parent (one
RTM_NEWLINK from the host namespace, where the parent is), then configured there like any
device. Executed by the kernel driver through the handlers registered here."""

from __future__ import annotations

import struct

from vnet.mechanisms.kernel.driver import HANDLERS, Work, device_delete, device_settings, handler
from vnet.mechanisms.macvlan.resources import Macvlan
from vnet.netlink import constants as c
from vnet.netlink import wire
from vnet.resources import HOST, Action, Change

IFLA_MACVLAN_MODE = 1
MACVLAN_MODE_BRIDGE = 4


def new_macvlan(name: str, parent: int, netns_fd: int) -> bytes:
    """RTM_NEWLINK creating macvlan `name` (bridge mode) of device `parent` in namespace `netns_fd`."""
    info = (wire.attr_str(c.IFLA_INFO_KIND, "macvlan")
            + wire.attr(c.IFLA_INFO_DATA, wire.attr_u32(IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE)))
    body = (struct.pack("=BxHiII", 0, 0, 0, 0, 0) + wire.attr_str(c.IFLA_IFNAME, name)
            + wire.attr_u32(c.IFLA_LINK, parent) + wire.attr_u32(c.IFLA_NET_NS_FD, netns_fd)
            + wire.attr(c.IFLA_LINKINFO, info))
    return wire.message(c.RTM_NEWLINK, c.NLM_F_REQUEST | c.NLM_F_ACK | c.NLM_F_CREATE | c.NLM_F_EXCL, body)


def _create(work: Work, i: int, want: Macvlan) -> None:
    end = want.end

    def build() -> bytes:
        fd = work.fd(end.netns)
        assert fd is not None
        return new_macvlan(end.name, work.host.index(HOST, want.parent), fd)
    work.send(0, HOST, i, build)
    work.send(1, end.netns, i, device_settings(work, end))


def _update(work: Work, i: int, change: Change) -> None:
    want = change.desired
    assert isinstance(want, Macvlan)
    work.send(0, want.end.netns, i, device_settings(work, want.end))


HANDLERS.update({
    (Macvlan.kind, Action.CREATE): handler(Macvlan, _create),
    (Macvlan.kind, Action.UPDATE): _update,
    (Macvlan.kind, Action.DELETE): handler(Macvlan, lambda w, i, r: device_delete(w, i, *r.occupies()[0])),
})

"""The kernel side of a macvlan: created straight into the node's namespace on its parent (one
RTM_NEWLINK from the host namespace, where the parent is), then configured there like any
device. Executed by the kernel driver through the handlers registered here."""

from __future__ import annotations

from vnet.mechanisms.kernel.driver import HANDLERS, Work, device_delete, device_settings, handler
from vnet.mechanisms.macvlan.resources import Macvlan
from vnet.netlink import wire
from vnet.resources import HOST, Action, Change


def _create(work: Work, i: int, want: Macvlan) -> None:
    end = want.end

    def build() -> bytes:
        fd = work.fd(end.netns)
        assert fd is not None
        return wire.new_link(create=True, ifname=end.name, netns_fd=fd, kind="macvlan",
                             lower=work.host.index(HOST, want.parent), macvlan_mode="bridge")
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

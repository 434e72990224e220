"""The kernel side of `attach: internal`: the device of an OVS internal port, moved into a node's
namespace. ovs-vswitchd makes the device (in the host namespace, named after the port); the
kernel driver moves and configures it, through the handlers registered here."""

from __future__ import annotations

from vnet.mechanisms.kernel.driver import GONE, HANDLERS, Work, device_delete, device_settings, handler
from vnet.mechanisms.ovs.resources import OvsInternal
from vnet.netlink import wire
from vnet.resources import HOST, Action, Change


def _move(work: Work, i: int, want: OvsInternal, phase: int) -> None:
    """Move the port's device into the node's namespace under the interface's name, then
    configure it there."""
    end = want.end
    work.send(phase, HOST, i, lambda: wire.new_link(index=work.host.index(HOST, want.port), ifname=end.name,
                                                    netns_fd=work.fd(end.netns)))
    work.send(phase + 1, end.netns, i, device_settings(work, end))


def _changed(work: Work, i: int, change: Change) -> None:
    want, have = change.desired, change.observed
    assert isinstance(want, OvsInternal) and isinstance(have, OvsInternal)
    if have.moved:
        work.send(0, want.end.netns, i, device_settings(work, want.end))
        return
    # Back in the host namespace (ovs-vswitchd restarted and made it anew): a stale device of the
    # interface's name in the namespace (the old one, which no process serves any more) goes first.
    work.send(0, want.end.netns, i, lambda: wire.del_link(ifname=want.end.name), GONE)
    _move(work, i, want, 1)


def _delete(work: Work, i: int, have: OvsInternal) -> None:
    if have.moved:  # else it is still ovs-vswitchd's device in the host: it goes with the port
        device_delete(work, i, have.end.netns, have.end.name)


HANDLERS.update({
    (OvsInternal.kind, Action.CREATE): handler(OvsInternal, lambda w, i, r: _move(w, i, r, 0)),
    (OvsInternal.kind, Action.UPDATE): _changed,
    (OvsInternal.kind, Action.DELETE): handler(OvsInternal, _delete),
})

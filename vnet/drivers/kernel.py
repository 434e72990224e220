"""The kernel driver: namespaces, Linux bridges, veth pairs, TAPs, addresses and routes.

A wave of independent changes becomes, per phase, one netlink batch per namespace (one
sendto, one ACK per message). Phases exist because some steps must follow others inside one
change: a veth end created straight into a namespace is given its alias there afterwards,
and an address needs the index its device got. Host-side devices are created and marked in
the same batch (one sendto: a crash cannot fall between them); devices inside a namespace are
owned through the namespace, which is marked before it gets its name.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import netaddr

from vnet.drivers import ethtool, netns
from vnet.drivers.host import KernelHost, lab_group
from vnet.drivers.netlink import bridge_vlan, wire
from vnet.drivers.netlink.errors import NetlinkError
from vnet.drivers.netlink.socket import NetlinkSocket
from vnet.drivers.tap import create_tap
from vnet.errors import VnetError
from vnet.reconcile.plan import Action, Change
from vnet.resources import (
    HOST,
    Address,
    DeviceEnd,
    LinuxBridge,
    Netns,
    OvsInternal,
    Resource,
    Route,
    StrayDevice,
    Tap,
    VethPair,
)

Builder = Callable[[], bytes]
MIN_MTU = 68
GONE = frozenset({errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL})


@dataclass
class _Work:
    """What one wave sends: per phase, messages per namespace and direct actions."""

    host: KernelHost
    group: int
    messages: dict[int, dict[str, list[tuple[int, Builder, frozenset[int]]]]] = field(default_factory=dict)
    actions: dict[int, list[tuple[int, Callable[[], None]]]] = field(default_factory=dict)
    fds: list[int] = field(default_factory=list)

    def send(self, phase: int, namespace: str, change: int, build: Builder,
             ignore: frozenset[int] = frozenset()) -> None:
        self.messages.setdefault(phase, {}).setdefault(namespace, []).append((change, build, ignore))

    def do(self, phase: int, change: int, action: Callable[[], None]) -> None:
        self.actions.setdefault(phase, []).append((change, action))

    def fd(self, namespace: str) -> int | None:
        if namespace == HOST:
            return None
        fd = self.host.namespace_fd(namespace)
        self.fds.append(fd)
        return fd


# --- namespaces -------------------------------------------------------------------------------

def _forwarding(want: Netns) -> None:
    """Set IPv4 and IPv6 forwarding of the namespace this thread is in."""
    for key, value in (("net/ipv4/ip_forward", want.forwarding),
                       ("net/ipv6/conf/all/forwarding", want.ipv6_forwarding)):
        with open(f"/proc/sys/{key}", "w") as handle:
            handle.write("1" if value else "0")


def _netns_create(work: _Work, i: int, want: Netns) -> None:
    def setup(name: str) -> None:
        sock = NetlinkSocket()
        try:
            sock.check([wire.new_link(ifname="lo", alias=want.mark, up=True)])
            _forwarding(want)
        except BaseException:
            sock.close()
            raise
        work.host.adopt(name, sock)

    work.do(0, i, lambda: netns.create([want.name], setup))


def _netns_update(work: _Work, i: int, want: Netns) -> None:
    def update() -> None:
        with netns.entered(want.name):
            _forwarding(want)
    work.do(0, i, update)


def _netns_delete(work: _Work, i: int, have: Netns) -> None:
    def delete() -> None:
        work.host.forget(have.name)
        netns.delete([have.name])
    work.do(0, i, delete)


# --- devices ----------------------------------------------------------------------------------

def _master_index(work: _Work, end: DeviceEnd) -> int:
    return work.host.index(end.netns, end.master) if end.master is not None else 0


def _tx_checksum(work: _Work, i: int, end: DeviceEnd) -> None:
    """Software checksums where asked (an ioctl, after the device exists: phase 1)."""
    if end.tx_checksum is not None:
        value = end.tx_checksum
        work.do(1, i, lambda: ethtool.set_tx_checksum(work.host.control(end.netns), end.name, value))


def _bridge_vlans(work: _Work, i: int, end: DeviceEnd, have: DeviceEnd | None) -> None:
    """Port VLANs of a VLAN-filtering bridge, after the port joined it (phase 2)."""
    if end.bridge_vlans is None:
        return
    current = set(have.bridge_vlans or ()) if have is not None else {(1, True, True)}  # kernel default
    stale = [v for v in current if v not in end.bridge_vlans]

    def index() -> int:
        return work.host.index(end.netns, end.name)

    if stale:
        work.send(2, end.netns, i, lambda: bridge_vlan.del_port_vlans(index(), stale), GONE)
    work.send(2, end.netns, i, lambda: bridge_vlan.set_port_vlans(index(), end.bridge_vlans or ()))


def _port_flags(work: _Work, i: int, end: DeviceEnd, have: DeviceEnd | None) -> None:
    """Flags of a Linux bridge port that differ (phase 2: the port must have joined its bridge;
    a new port has the kernel's defaults, which are what vnet wants)."""
    if end.port_flags is not None and have is not None and have.port_flags != end.port_flags:
        flags = end.port_flags
        work.send(2, end.netns, i, lambda: wire.set_port_flags(ifname=end.name, flags=flags))


def _settings(work: _Work, end: DeviceEnd) -> Builder:
    """Alias, MAC, MTU, master and state of an existing device (also after creating it)."""
    return lambda: wire.new_link(ifname=end.name, alias=end.alias, mac=end.mac, mtu=end.mtu,
                                 master=_master_index(work, end), up=end.up)


def _bridge_options(want: LinuxBridge) -> wire.BridgeOptions:
    # vlan_filtering is only sent when wanted: kernels without CONFIG_BRIDGE_VLAN_FILTERING
    # refuse the attribute even with value 0.
    return wire.BridgeOptions(stp_state=int(want.stp), forward_delay=want.forward_delay,
                              ageing_time=want.ageing_time, vlan_filtering=want.vlan_filtering or None)


def _host_ipv6_off(name: str) -> Callable[[], None]:
    """No IPv6 on a host-side device (bridge, port, TAP: vnet gives them no address). With it,
    each one adds fe80::/64 and ff00::/8 routes to the host's table, which the kernel scans
    linearly (__find_rr_leaf) for every MLD/NDP frame the lab's bridges pass up to the host:
    linear,1000 took ~13 min to apply instead of ~30 s (bench/README.md). Best effort: a
    kernel without IPv6 has no such file."""
    def write() -> None:
        with contextlib.suppress(OSError), open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("1")
    return write


def _bridge_create(work: _Work, i: int, want: LinuxBridge) -> None:
    # A bridge follows the smallest MTU of its ports (each port joining lowers it) unless its MTU
    # was *changed* by the user: an MTU given at creation is not, so the bridge is made with
    # another one and changed to the wanted one, or a 9000 bridge with a 1500 port ends at 1500
    # and only the next apply would converge.
    made_with = None if want.mtu is None else (want.mtu - 1 if want.mtu > MIN_MTU else want.mtu + 1)
    work.send(0, HOST, i, lambda: wire.new_link(
        create=True, ifname=want.name, kind="bridge", group=work.group, mtu=made_with,
        bridge=_bridge_options(want), up=want.up))
    work.send(0, HOST, i, lambda: wire.new_link(ifname=want.name, alias=want.alias, mtu=want.mtu))
    work.do(1, i, _host_ipv6_off(want.name))


def _bridge_update(work: _Work, i: int, want: LinuxBridge) -> None:
    work.send(0, HOST, i, lambda: wire.new_link(ifname=want.name, kind="bridge", bridge=_bridge_options(want),
                                                alias=want.alias, mtu=want.mtu, up=want.up))


def _veth_create(work: _Work, i: int, want: VethPair) -> None:
    a, b = want.a, want.b

    def create() -> bytes:
        peer = wire.VethPeer(b.name, netns_fd=work.fd(b.netns), group=work.group, mtu=b.mtu, mac=b.mac)
        return wire.new_link(create=True, ifname=a.name, netns_fd=work.fd(a.netns), group=work.group,
                             mtu=a.mtu, mac=a.mac, kind="veth", peer=peer)

    work.send(0, HOST, i, create)
    for end in (a, b):  # host ends in the same batch as the create; namespace ends after it
        work.send(0 if end.netns == HOST else 1, end.netns, i, _settings(work, end))
        if end.netns == HOST:
            work.do(1, i, _host_ipv6_off(end.name))
        _tx_checksum(work, i, end)
        _bridge_vlans(work, i, end, None)


def _veth_update(work: _Work, i: int, want: VethPair, have: VethPair | None) -> None:
    for end, old in ((want.a, have.a if have else None), (want.b, have.b if have else None)):
        work.send(0, end.netns, i, _settings(work, end))
        _tx_checksum(work, i, end)
        _bridge_vlans(work, i, end, old)
        _port_flags(work, i, end, old)


def _device_delete(work: _Work, i: int, namespace: str, name: str) -> None:
    if namespace != HOST and not netns.exists(namespace):
        return  # the namespace is gone and took the device with it
    work.send(0, namespace, i, lambda: wire.del_link(ifname=name), GONE)


def _tap_create(work: _Work, i: int, want: Tap) -> None:
    end = want.end

    def mark(name: str) -> None:
        work.host.socket(HOST).check([wire.new_link(ifname=name, group=work.group),
                                      _settings(work, end)()])

    work.do(0, i, lambda: create_tap(end.name, want.owner, want.group, want.multi_queue, mark))
    work.do(1, i, _host_ipv6_off(end.name))
    _bridge_vlans(work, i, end, None)


# --- OVS internal ports moved into a namespace (attach: internal) -------------------------------

def _internal_move(work: _Work, i: int, want: OvsInternal, phase: int) -> None:
    """Move the port's device (ovs-vswitchd made it in the host namespace, named after the port)
    into the node's namespace under the interface's name, then configure it there."""
    end = want.end
    work.send(phase, HOST, i, lambda: wire.new_link(index=work.host.index(HOST, want.port), ifname=end.name,
                                                    netns_fd=work.fd(end.netns)))
    work.send(phase + 1, end.netns, i, _settings(work, end))


def _internal_changed(work: _Work, i: int, change: Change) -> None:
    want, have = change.desired, change.observed
    assert isinstance(want, OvsInternal) and isinstance(have, OvsInternal)
    if have.moved:
        work.send(0, want.end.netns, i, _settings(work, want.end))
        return
    # Back in the host namespace (ovs-vswitchd restarted and made it anew): a stale device of the
    # interface's name in the namespace (the old one, which no process serves any more) goes first.
    work.send(0, want.end.netns, i, lambda: wire.del_link(ifname=want.end.name), GONE)
    _internal_move(work, i, want, 1)


def _internal_delete(work: _Work, i: int, have: OvsInternal) -> None:
    if have.moved:  # else it is still ovs-vswitchd's device in the host: it goes with the port
        _device_delete(work, i, have.end.netns, have.end.name)


# --- addresses and routes ---------------------------------------------------------------------

def _address(work: _Work, want: Address, encode: Callable[[int, str, int], bytes]) -> Builder:
    network = netaddr.IPNetwork(want.address)
    return lambda: encode(work.host.index(want.netns, want.device), str(network.ip), network.prefixlen)


def _route_message(route: Route, delete: bool = False, replace: bool = False) -> Builder:
    network = netaddr.IPNetwork(route.destination)
    family = socket.AF_INET if network.version == 4 else socket.AF_INET6
    dst = None if network.prefixlen == 0 else str(network.ip)
    gateway = route.via or None
    if delete:
        return lambda: wire.del_route(family=family, dst=dst, dst_len=network.prefixlen,
                                      gateway=gateway, priority=route.metric)
    return lambda: wire.new_route(family=family, dst=dst, dst_len=network.prefixlen, gateway=gateway,
                                  priority=route.metric, replace=replace)


def _route_add(work: _Work, i: int, want: Route, replace: bool) -> None:
    work.send(2, want.netns, i, _route_message(want, replace=replace))


def _route_delete(work: _Work, i: int, have: Route) -> None:
    if netns.exists(have.netns):
        work.send(0, have.netns, i, _route_message(have, delete=True), GONE)


Handler = Callable[[_Work, int, Change], None]
_R = TypeVar("_R", bound=Resource)


def _on(cls: type[_R], handler: Callable[[_Work, int, _R], None]) -> Handler:
    def checked(work: _Work, i: int, change: Change) -> None:
        resource = change.resource
        assert isinstance(resource, cls)
        handler(work, i, resource)
    return checked


def _veth_changed(work: _Work, i: int, change: Change) -> None:
    assert isinstance(change.desired, VethPair) and isinstance(change.observed, VethPair)
    _veth_update(work, i, change.desired, change.observed)


def _tap_changed(work: _Work, i: int, change: Change) -> None:
    assert isinstance(change.desired, Tap) and isinstance(change.observed, Tap)
    work.send(0, HOST, i, _settings(work, change.desired.end))
    _bridge_vlans(work, i, change.desired.end, change.observed.end)
    _port_flags(work, i, change.desired.end, change.observed.end)


def _address_add(work: _Work, i: int, want: Address) -> None:
    work.send(2, want.netns, i, _address(work, want, wire.new_addr))


def _address_delete(work: _Work, i: int, have: Address) -> None:
    if netns.exists(have.netns):
        work.send(0, have.netns, i, _address(work, have, wire.del_addr), GONE)


HANDLERS: dict[tuple[str, Action], Handler] = {
    ("netns", Action.CREATE): _on(Netns, _netns_create),
    ("netns", Action.UPDATE): _on(Netns, _netns_update),
    ("netns", Action.DELETE): _on(Netns, _netns_delete),
    ("bridge", Action.CREATE): _on(LinuxBridge, _bridge_create),
    ("bridge", Action.UPDATE): _on(LinuxBridge, _bridge_update),
    ("bridge", Action.DELETE): _on(LinuxBridge, lambda w, i, r: _device_delete(w, i, HOST, r.name)),
    ("veth", Action.CREATE): _on(VethPair, _veth_create),
    ("veth", Action.UPDATE): _veth_changed,
    ("veth", Action.DELETE): _on(VethPair, lambda w, i, r: _device_delete(w, i, r.a.netns, r.a.name)),
    ("tap", Action.CREATE): _on(Tap, _tap_create),
    ("tap", Action.UPDATE): _tap_changed,
    ("tap", Action.DELETE): _on(Tap, lambda w, i, r: _device_delete(w, i, HOST, r.end.name)),
    ("stray", Action.DELETE): _on(StrayDevice, lambda w, i, r: _device_delete(w, i, r.netns, r.name)),
    ("ovs-internal", Action.CREATE): _on(OvsInternal, lambda w, i, r: _internal_move(w, i, r, 0)),
    ("ovs-internal", Action.UPDATE): _internal_changed,
    ("ovs-internal", Action.DELETE): _on(OvsInternal, _internal_delete),
    ("address", Action.CREATE): _on(Address, _address_add),
    ("address", Action.DELETE): _on(Address, _address_delete),
    ("route", Action.CREATE): _on(Route, lambda w, i, r: _route_add(w, i, r, False)),
    ("route", Action.UPDATE): _on(Route, lambda w, i, r: _route_add(w, i, r, True)),
    ("route", Action.DELETE): _on(Route, _route_delete),
}


class KernelDriver:
    """Executes kernel changes of a lab, batched per phase and namespace."""

    kinds: tuple[str, ...] = ("netns", "bridge", "veth", "tap", "address", "route", "stray", "ovs-internal")

    def __init__(self, lab: str, host: KernelHost) -> None:
        self.group = lab_group(lab)
        self.host = host

    def execute(self, changes: Sequence[Change]) -> list[str | None]:
        work = _Work(self.host, self.group)
        errors: list[str | None] = [None] * len(changes)
        for i, change in enumerate(changes):
            handler = HANDLERS.get((change.key[0], change.action))
            if handler is None:  # e.g. rolling back the delete of a stray device
                errors[i] = f"vnet cannot {change.action} a {change.key[0]} object"
                continue
            handler(work, i, change)
        try:
            for phase in sorted(set(work.messages) | set(work.actions)):
                self._run_phase(work, phase, errors)
                self.host.invalidate()
        finally:
            for fd in work.fds:
                _close(fd)
        return errors

    def _run_phase(self, work: _Work, phase: int, errors: list[str | None]) -> None:
        for i, action in work.actions.get(phase, []):
            try:
                action()
            except (VnetError, OSError) as exc:
                errors[i] = errors[i] or _reason(exc)
        for namespace, items in work.messages.get(phase, {}).items():
            self._send(namespace, items, errors)

    def _send(self, namespace: str, items: list[tuple[int, Builder, frozenset[int]]],
              errors: list[str | None]) -> None:
        built: list[tuple[int, bytes, frozenset[int]]] = []
        for i, build, ignore in items:
            try:
                built.append((i, build(), ignore))
            except (VnetError, OSError, ValueError) as exc:
                errors[i] = errors[i] or _reason(exc)
        try:
            acks = self.host.socket(namespace).transact([message for _, message, _ in built])
        except (VnetError, OSError) as exc:
            for i, _, _ in built:
                errors[i] = errors[i] or _reason(exc)
            return
        for (i, _, ignore), ack in zip(built, acks, strict=True):
            if ack.errno and ack.errno not in ignore:
                text = f"{ack.message} ({ack.error()})" if ack.message else str(ack.error())
                errors[i] = errors[i] or f"kernel: {text}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NetlinkError):
        return f"kernel: {exc}"
    if isinstance(exc, VnetError):
        return exc.message
    return str(exc)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


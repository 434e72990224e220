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

from vnet.errors import VnetError
from vnet.host import netns
from vnet.marks import lab_group
from vnet.mechanisms.kernel import ethtool, teardown
from vnet.mechanisms.kernel.host import KernelHost
from vnet.mechanisms.kernel.resources import (
    Address,
    DeviceEnd,
    LinuxBridge,
    Netns,
    Route,
    StrayDevice,
    Tap,
    VethPair,
)
from vnet.mechanisms.kernel.tap import create_tap
from vnet.netlink import bridge_vlan, wire
from vnet.netlink.errors import NetlinkError
from vnet.netlink.socket import NetlinkSocket
from vnet.resources import HOST, Action, Change, Failure, Resource

Builder = Callable[[], bytes]
MIN_MTU = 68
GONE = frozenset({errno.ENODEV, errno.ENOENT, errno.ESRCH, errno.EADDRNOTAVAIL})


@dataclass
class Work:
    """What one wave sends: per phase, messages per namespace and direct actions."""

    host: KernelHost
    group: int
    teardown: bool  # destroy: every device of the lab goes (its device group may go at once)
    messages: dict[int, dict[str, list[tuple[int, Builder, frozenset[int]]]]] = field(default_factory=dict)
    actions: dict[int, list[tuple[int, Callable[[], None]]]] = field(default_factory=dict)
    fds: list[int] = field(default_factory=list)
    # deletes of host devices and bridges, made into batches by teardown.batch_deletes
    host_deletes: list[tuple[int, str]] = field(default_factory=list)
    bridges: list[tuple[int, str]] = field(default_factory=list)

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


def _netns_create(work: Work, i: int, want: Netns) -> None:
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


def _netns_update(work: Work, i: int, want: Netns) -> None:
    def update() -> None:
        with netns.entered(want.name):
            _forwarding(want)
    work.do(0, i, update)


def _netns_delete(work: Work, i: int, have: Netns) -> None:
    def delete() -> None:
        work.host.forget(have.name)
        netns.delete([have.name])
    work.do(0, i, delete)


# --- devices ----------------------------------------------------------------------------------

def _master_index(work: Work, end: DeviceEnd) -> int:
    return work.host.index(end.netns, end.master) if end.master is not None else 0


def _tx_checksum(work: Work, i: int, end: DeviceEnd) -> None:
    """Software checksums where asked (an ioctl, after the device exists: phase 1)."""
    if end.tx_checksum is not None:
        value = end.tx_checksum
        work.do(1, i, lambda: ethtool.set_tx_checksum(work.host.control(end.netns), end.name, value))


def _bridge_vlans(work: Work, i: int, end: DeviceEnd, have: DeviceEnd | None) -> None:
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


def _port_flags(work: Work, i: int, end: DeviceEnd, have: DeviceEnd | None) -> None:
    """Flags of a Linux bridge port that differ (phase 2: the port must have joined its bridge;
    a new port has the kernel's defaults, which are what vnet wants)."""
    if end.port_flags is not None and have is not None and have.port_flags != end.port_flags:
        flags = end.port_flags
        work.send(2, end.netns, i, lambda: wire.set_port_flags(ifname=end.name, flags=flags))


def device_settings(work: Work, end: DeviceEnd) -> Builder:
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


def _bridge_create(work: Work, i: int, want: LinuxBridge) -> None:
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


def _bridge_update(work: Work, i: int, want: LinuxBridge) -> None:
    work.send(0, HOST, i, lambda: wire.new_link(ifname=want.name, kind="bridge", bridge=_bridge_options(want),
                                                alias=want.alias, mtu=want.mtu, up=want.up))


def _veth_create(work: Work, i: int, want: VethPair) -> None:
    a, b = want.a, want.b

    def create() -> bytes:
        peer = wire.VethPeer(b.name, netns_fd=work.fd(b.netns), group=work.group, mtu=b.mtu, mac=b.mac)
        return wire.new_link(create=True, ifname=a.name, netns_fd=work.fd(a.netns), group=work.group,
                             mtu=a.mtu, mac=a.mac, kind="veth", peer=peer)

    work.send(0, HOST, i, create)
    for end in (a, b):  # host ends in the same batch as the create; namespace ends after it
        work.send(0 if end.netns == HOST else 1, end.netns, i, device_settings(work, end))
        if end.netns == HOST:
            work.do(1, i, _host_ipv6_off(end.name))
        _tx_checksum(work, i, end)
        _bridge_vlans(work, i, end, None)


def _veth_update(work: Work, i: int, want: VethPair, have: VethPair | None) -> None:
    for end, old in ((want.a, have.a if have else None), (want.b, have.b if have else None)):
        work.send(0, end.netns, i, device_settings(work, end))
        _tx_checksum(work, i, end)
        _bridge_vlans(work, i, end, old)
        _port_flags(work, i, end, old)


def device_delete(work: Work, i: int, namespace: str, name: str) -> None:
    if namespace == HOST:
        work.host_deletes.append((i, name))
    elif netns.exists(namespace):  # else the namespace is gone and took the device with it
        work.send(0, namespace, i, lambda: wire.del_link(ifname=name), GONE)


def _tap_create(work: Work, i: int, want: Tap) -> None:
    end = want.end

    def mark(name: str) -> None:
        work.host.socket(HOST).check([wire.new_link(ifname=name, group=work.group),
                                      device_settings(work, end)()])

    work.do(0, i, lambda: create_tap(end.name, want.owner, want.group, want.multi_queue, mark))
    work.do(1, i, _host_ipv6_off(end.name))
    _bridge_vlans(work, i, end, None)


# --- addresses and routes ---------------------------------------------------------------------

def _address(work: Work, want: Address, encode: Callable[[int, str, int], bytes]) -> Builder:
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


def _route_add(work: Work, i: int, want: Route, replace: bool) -> None:
    work.send(2, want.netns, i, _route_message(want, replace=replace))


def _route_delete(work: Work, i: int, have: Route) -> None:
    if netns.exists(have.netns):
        work.send(0, have.netns, i, _route_message(have, delete=True), GONE)


Handler = Callable[[Work, int, Change], None]
_R = TypeVar("_R", bound=Resource)


def handler(cls: type[_R], run: Callable[[Work, int, _R], None]) -> Handler:
    def checked(work: Work, i: int, change: Change) -> None:
        resource = change.resource
        assert isinstance(resource, cls)
        run(work, i, resource)
    return checked


def _veth_changed(work: Work, i: int, change: Change) -> None:
    assert isinstance(change.desired, VethPair) and isinstance(change.observed, VethPair)
    _veth_update(work, i, change.desired, change.observed)


def _tap_changed(work: Work, i: int, change: Change) -> None:
    assert isinstance(change.desired, Tap) and isinstance(change.observed, Tap)
    work.send(0, HOST, i, device_settings(work, change.desired.end))
    _bridge_vlans(work, i, change.desired.end, change.observed.end)
    _port_flags(work, i, change.desired.end, change.observed.end)


def _address_add(work: Work, i: int, want: Address) -> None:
    work.send(2, want.netns, i, _address(work, want, wire.new_addr))


def _address_delete(work: Work, i: int, have: Address) -> None:
    if netns.exists(have.netns):
        work.send(0, have.netns, i, _address(work, have, wire.del_addr), GONE)


# (kind, action) -> how the kernel driver does it. Other mechanisms whose objects are kernel
# devices register here too (the OVS internal port's device moved into a namespace).
HANDLERS: dict[tuple[str, Action], Handler] = {
    ("netns", Action.CREATE): handler(Netns, _netns_create),
    ("netns", Action.UPDATE): handler(Netns, _netns_update),
    ("netns", Action.DELETE): handler(Netns, _netns_delete),
    ("bridge", Action.CREATE): handler(LinuxBridge, _bridge_create),
    ("bridge", Action.UPDATE): handler(LinuxBridge, _bridge_update),
    ("bridge", Action.DELETE): handler(LinuxBridge, lambda w, i, r: w.bridges.append((i, r.name))),
    ("veth", Action.CREATE): handler(VethPair, _veth_create),
    ("veth", Action.UPDATE): _veth_changed,
    ("veth", Action.DELETE): handler(VethPair, lambda w, i, r: device_delete(w, i, r.a.netns, r.a.name)),
    ("tap", Action.CREATE): handler(Tap, _tap_create),
    ("tap", Action.UPDATE): _tap_changed,
    ("tap", Action.DELETE): handler(Tap, lambda w, i, r: device_delete(w, i, HOST, r.end.name)),
    ("stray", Action.DELETE): handler(StrayDevice, lambda w, i, r: device_delete(w, i, r.netns, r.name)),
    ("address", Action.CREATE): handler(Address, _address_add),
    ("address", Action.DELETE): handler(Address, _address_delete),
    ("route", Action.CREATE): handler(Route, lambda w, i, r: _route_add(w, i, r, False)),
    ("route", Action.UPDATE): handler(Route, lambda w, i, r: _route_add(w, i, r, True)),
    ("route", Action.DELETE): handler(Route, _route_delete),
}


class KernelDriver:
    """Executes kernel changes of a lab, batched per phase and namespace. Many deletes at once
    (destroy) take the kernel's cheap ways: a lab's whole device group in one RTM_DELLINK, and
    bridges retired to the background reaper (vnet/mechanisms/kernel/teardown.py)."""

    def __init__(self, lab: str, host: KernelHost, teardown: bool = False) -> None:
        self.lab = lab
        self.group = lab_group(lab)
        self.host = host
        self.teardown = teardown

    def execute(self, changes: Sequence[Change]) -> list[Failure | None]:
        work = Work(self.host, self.group, self.teardown)
        errors: list[Failure | None] = [None] * len(changes)
        for i, change in enumerate(changes):
            run = HANDLERS.get((change.key[0], change.action))
            if run is None:  # e.g. rolling back the delete of a stray device
                errors[i] = Failure(f"vnet cannot {change.action} a {change.key[0]} object")
                continue
            run(work, i, change)
        teardown.batch_deletes(self.lab, work)
        try:
            for phase in sorted(set(work.messages) | set(work.actions)):
                self._run_phase(work, phase, errors)
                self.host.invalidate()
        finally:
            for fd in work.fds:
                _close(fd)
        return errors

    def _run_phase(self, work: Work, phase: int, errors: list[Failure | None]) -> None:
        for i, action in work.actions.get(phase, []):
            try:
                action()
            except (VnetError, OSError) as exc:
                errors[i] = errors[i] or _failure(exc)
        for namespace, items in work.messages.get(phase, {}).items():
            self._send(namespace, items, errors)

    def _send(self, namespace: str, items: list[tuple[int, Builder, frozenset[int]]],
              errors: list[Failure | None]) -> None:
        built: list[tuple[int, bytes, frozenset[int]]] = []
        for i, build, ignore in items:
            try:
                built.append((i, build(), ignore))
            except (VnetError, OSError, ValueError) as exc:
                errors[i] = errors[i] or _failure(exc)
        try:
            acks = self.host.socket(namespace).transact([message for _, message, _ in built])
        except (VnetError, OSError) as exc:
            for i, _, _ in built:
                errors[i] = errors[i] or _failure(exc)
            return
        for (i, _, ignore), ack in zip(built, acks, strict=True):
            if ack.errno and ack.errno not in ignore:
                text = f"{ack.message} ({ack.error()})" if ack.message else str(ack.error())
                errors[i] = errors[i] or Failure(f"kernel: {text}", ack.errno, gone=ack.errno in GONE)


def _failure(exc: BaseException) -> Failure:
    number = exc.errno if isinstance(exc, OSError) else None
    if isinstance(exc, NetlinkError):
        return Failure(f"kernel: {exc}", number, gone=number in GONE)
    if isinstance(exc, VnetError):
        return Failure(exc.message, None, exc.hint)
    return Failure(str(exc), number, gone=number in GONE)


def _close(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)

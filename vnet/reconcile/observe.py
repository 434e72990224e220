"""observe: what the host has that carries a lab's mark, as resources, plus name collisions.

Ownership (design.md §4): a host device is the lab's when its ifalias starts with
`vnet:<lab>:`; a namespace `vnet-<lab>-*` is the lab's when its loopback's ifalias does (it
is set before the namespace gets its name); everything inside an owned namespace is the
lab's. Names the lab wants that something else holds are reported, never touched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from vnet.drivers import netns
from vnet.drivers.host import KernelHost
from vnet.drivers.netlink import bridge_vlan
from vnet.drivers.netlink.constants import AF_INET, AF_INET6
from vnet.drivers.netlink.parse import AddrMsg, LinkMsg, RouteMsg
from vnet.resources import (
    HOST,
    Address,
    DesiredState,
    DeviceEnd,
    LinuxBridge,
    Netns,
    ObservedState,
    OvsInternal,
    Resource,
    ResourceKey,
    Route,
    StrayDevice,
    Tap,
    VethPair,
)

KERNEL_ROUTE_PROTOCOLS = frozenset({2, 9, 16})  # kernel, router advertisement, dhcp
# Kinds of an OVS internal port's device: a TAP (userspace datapath), `openvswitch` (kernel).
INTERNAL_KINDS = frozenset({"tun", "openvswitch"})
RTN_UNICAST = 1


def lab_prefix(lab: str) -> str:
    return f"vnet:{lab}:"


def holder(alias: str | None) -> str:
    """Who owns a device, from its alias, for collision messages."""
    if alias and alias.startswith("vnet:"):
        return f"vnet lab `{alias.split(':')[1]}`"
    return "something other than vnet"


@dataclass
class _Scan:
    lab: str
    host: KernelHost
    ends: dict[tuple[str, str], DeviceEnd] = field(default_factory=dict)  # (ns, alias) -> veth end
    owner_key: dict[tuple[str, str], ResourceKey] = field(default_factory=dict)  # (ns, device) -> key
    resources: dict[ResourceKey, Resource] = field(default_factory=dict)
    foreign_names: dict[tuple[str, str], str] = field(default_factory=dict)
    foreign_namespaces: dict[str, str] = field(default_factory=dict)
    port_vlans: dict[int, tuple[tuple[int, bool, bool], ...]] = field(default_factory=dict)
    # (ns, alias) of a veth end -> (its ifindex, its peer's ifindex): pairs ends no file names
    indexes: dict[tuple[str, str], tuple[int, int | None]] = field(default_factory=dict)
    internal: dict[tuple[str, str], DeviceEnd] = field(default_factory=dict)  # (ns, name): OVS-made device

    def add(self, resource: Resource) -> None:
        self.resources[resource.key] = resource


def _end(scan: _Scan, namespace: str, link: LinkMsg, names: dict[int, str]) -> DeviceEnd:
    master = names.get(link.master) if link.master else None
    vlans = scan.port_vlans.get(link.index) if namespace == HOST else None
    return DeviceEnd(namespace, link.name, link.alias or "", link.mac, link.mtu, master, link.up,
                     scan.host.tx_checksum(namespace, link.name), vlans, link.port_flags)


def _tap_access(name: str) -> tuple[int | None, int | None, bool]:
    def read(attr: str) -> str:
        with open(f"/sys/class/net/{name}/{attr}") as handle:
            return handle.read().strip()
    try:
        owner, group, flags = int(read("owner")), int(read("group")), int(read("tun_flags"), 16)
    except (OSError, ValueError):
        return None, None, False
    return (owner if owner >= 0 else None), (group if group >= 0 else None), bool(flags & 0x0100)


def _device(scan: _Scan, namespace: str, link: LinkMsg, names: dict[int, str]) -> None:
    if link.kind == "veth":
        slot = (namespace, link.alias or f"#{link.name}")
        scan.ends[slot] = _end(scan, namespace, link, names)
        scan.indexes[slot] = (link.index, link.peer_index)
    elif link.kind == "bridge" and namespace == HOST and link.bridge is not None:
        info = link.bridge
        scan.add(LinuxBridge(link.name, link.alias or "", info.stp_state != 0, info.forward_delay,
                             round(info.ageing_time), info.vlan_filtering, link.mtu, link.up))
        scan.owner_key[(HOST, link.name)] = ("bridge", link.name)
    elif link.kind == "tun" and namespace == HOST:
        tap = Tap(_end(scan, namespace, link, names), *_tap_access(link.name))
        scan.add(tap)
        scan.owner_key[(HOST, link.name)] = tap.key
    elif link.kind in INTERNAL_KINDS and namespace != HOST:
        scan.internal[(namespace, link.name)] = _end(scan, namespace, link, names)
    elif link.name != "lo":
        stray = StrayDevice(namespace, link.name, link.alias or "")
        scan.add(stray)
        scan.owner_key[(namespace, link.name)] = stray.key


def _scan_host(scan: _Scan, wanted: set[str], with_vlans: bool) -> None:
    links = scan.host.links(HOST)
    if with_vlans:  # VLANs of Linux bridge ports, only when some port's VLANs are managed
        scan.port_vlans = bridge_vlan.port_vlans(scan.host.socket(HOST).dump(bridge_vlan.dump_port_vlans()))
    names = {link.index: name for name, link in links.items()}
    prefix = lab_prefix(scan.lab)
    for name, link in links.items():
        if link.alias and link.alias.startswith(prefix):
            _device(scan, HOST, link, names)
        elif name in wanted:
            scan.foreign_names[(HOST, name)] = holder(link.alias)


def _scan_namespace(scan: _Scan, name: str, wanted: set[str]) -> None:
    links = scan.host.links(name)
    lo = links.get("lo")
    mark = lo.alias if lo is not None else None
    if not mark or not mark.startswith(lab_prefix(scan.lab)):
        if name in wanted:
            scan.foreign_namespaces[name] = holder(mark)
        return
    sock = scan.host.socket(name)
    scan.add(Netns(name, mark, bool(sock.forwarding(AF_INET)), bool(sock.forwarding(AF_INET6))))
    names = {link.index: n for n, link in links.items()}
    for link in links.values():
        _device(scan, name, link, names)
    _addresses(scan, name, sock.addresses(), names)
    _routes(scan, name, sock.routes())


def _addresses(scan: _Scan, namespace: str, addrs: list[AddrMsg], names: dict[int, str]) -> None:
    for addr in addrs:
        device = names.get(addr.index, "")
        if device in ("", "lo") or addr.address.lower().startswith("fe80:"):
            continue
        owner = scan.owner_key.get((namespace, device), ("veth", f"{namespace}/{device}"))
        scan.add(Address(namespace, device, f"{addr.address}/{addr.prefixlen}", owner))


def _routes(scan: _Scan, namespace: str, routes: list[RouteMsg]) -> None:
    for route in routes:
        if route.protocol in KERNEL_ROUTE_PROTOCOLS or route.type != RTN_UNICAST:
            continue
        default = "0.0.0.0/0" if route.family == 2 else "::/0"
        destination = f"{route.dst}/{route.dst_len}" if route.dst else default
        scan.add(Route(namespace, destination, route.gateway or "", route.priority or None))


def _match_internal(scan: _Scan, desired: DesiredState | None) -> None:
    """Devices of OVS internal ports (attach: internal) where the desired ones say; others are
    strays. A device named after its port in the host namespace was made by ovs-vswitchd and
    not moved yet (or made again by a restarted vswitchd): observed as `moved=False`."""
    host = scan.host.links(HOST)
    for want in (desired.resources.values() if desired else ()):
        if not isinstance(want, OvsInternal):
            continue
        end = scan.internal.pop((want.end.netns, want.end.name), None)
        unmoved = host.get(want.port)
        if unmoved is not None and unmoved.kind in INTERNAL_KINDS:
            found = replace(want, moved=False)
        elif end is not None:
            found = OvsInternal(end, want.port)
        else:
            continue
        scan.add(found)
        scan.owner_key[(want.end.netns, want.end.name)] = found.key
    for (namespace, name), end in scan.internal.items():
        stray = StrayDevice(namespace, name, end.alias)
        scan.add(stray)
        scan.owner_key[(namespace, name)] = stray.key


def _pair_veths(scan: _Scan, desired: DesiredState | None) -> None:
    """Pair observed veth ends as the desired pairs say (by alias); the rest are strays."""
    for want in (desired.resources.values() if desired else ()):
        if not isinstance(want, VethPair):
            continue
        a = scan.ends.get((want.a.netns, want.a.alias))
        b = scan.ends.get((want.b.netns, want.b.alias))
        if a is not None and b is not None:
            pair = VethPair(a, b)
            scan.add(pair)
            del scan.ends[(want.a.netns, want.a.alias)], scan.ends[(want.b.netns, want.b.alias)]
            for end in (a, b):
                scan.owner_key[(end.netns, end.name)] = pair.key
    _pair_by_peer(scan)
    for end in scan.ends.values():
        stray = StrayDevice(end.netns, end.name, end.alias)
        scan.add(stray)
        scan.owner_key[(end.netns, end.name)] = stray.key


def _pair_by_peer(scan: _Scan) -> None:
    """Pair the remaining ends whose peer indexes point at each other (a link the file no longer
    has): a whole pair can be deleted as one and, on rollback, created again."""
    by_index: dict[int, list[tuple[str, str]]] = {}
    for slot, (index, _) in scan.indexes.items():
        if slot in scan.ends:
            by_index.setdefault(index, []).append(slot)
    for slot in sorted(scan.ends):
        if slot not in scan.ends:
            continue
        index, peer = scan.indexes[slot]
        # Indexes are per namespace, so both directions must agree (each end names the other).
        partner = next((other for other in by_index.get(peer or -1, ())
                        if other != slot and other in scan.ends and scan.indexes[other][1] == index), None)
        if partner is None:
            continue
        a, b = scan.ends.pop(slot), scan.ends.pop(partner)
        if a.netns == HOST and b.netns != HOST:
            a, b = b, a  # the namespace end names the pair, as the compiler does
        pair = VethPair(a, b)
        scan.add(pair)
        for end in (a, b):
            scan.owner_key[(end.netns, end.name)] = pair.key


def observe(lab: str, desired: DesiredState | None, host: KernelHost) -> ObservedState:
    """The lab's objects on the host (all of them: pass desired=None for destroy)."""
    host.invalidate()
    scan = _Scan(lab, host)
    resources = desired.resources.values() if desired else ()
    wanted_names = {name for r in resources for ns, name in r.occupies() if ns == HOST}
    wanted_namespaces = {r.name for r in resources if isinstance(r, Netns)}
    with_vlans = any(isinstance(r, VethPair | Tap) and any(
        e.bridge_vlans is not None for e in ((r.a, r.b) if isinstance(r, VethPair) else (r.end,)))
        for r in resources)
    _scan_host(scan, wanted_names, with_vlans)
    for name in netns.names():
        if name.startswith(f"vnet-{lab}-") and os.path.ismount(os.path.join(netns.NETNS_RUN_DIR, name)):
            _scan_namespace(scan, name, wanted_namespaces)
    _match_internal(scan, desired)
    _pair_veths(scan, desired)
    _fix_address_owners(scan)
    return ObservedState(lab, scan.resources, scan.foreign_names, scan.foreign_namespaces)


def _fix_address_owners(scan: _Scan) -> None:
    """Addresses were read before veths were paired: point them at their device's resource."""
    for key, resource in list(scan.resources.items()):
        if isinstance(resource, Address):
            owner = scan.owner_key.get((resource.netns, resource.device), resource.device_key)
            if owner != resource.device_key:
                scan.resources[key] = Address(resource.netns, resource.device, resource.address, owner)

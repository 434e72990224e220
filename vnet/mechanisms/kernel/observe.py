"""What the host's kernel has of a lab: one scan, the kernel objects, and pairing veth ends.

Ownership (README, "How vnet changes the host"): a host device is the lab's when its ifalias
starts with `vnet:<lab>:`; a namespace `vnet-<lab>-*` is the lab's when its loopback's ifalias
does (it is set before the namespace gets its name); everything inside an owned namespace is the
lab's. Names others hold are recorded (`held`) for the collision check, never touched.

`scan` reads the host once per observation (device lists of the host and of every lab namespace,
with their addresses, routes and forwarding); other mechanisms observe their own devices from
the same scan, and claim them (`CLAIMS`: an OVS internal port's device, an SR-IOV VF's netdev)
so that the kernel's observer does not report them as strays. `match` pairs the veth ends it
found as the desired pairs say (by alias), else by their peer indexes; the rest are strays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vnet.host import netns
from vnet.marks import holder, lab_prefix
from vnet.mechanisms.base import Context, Observation
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
from vnet.mechanisms.kernel.teardown import is_lab_device, orphans
from vnet.netlink.constants import AF_INET, AF_INET6
from vnet.netlink.parse import AddrMsg, LinkMsg, RouteMsg
from vnet.resources import HOST, DesiredState, ObservedState, Resource, ResourceKey

KERNEL_ROUTE_PROTOCOLS = frozenset({2, 9, 16})  # kernel, router advertisement, dhcp
RTN_UNICAST = 1
# Devices other mechanisms own and observe themselves, by (lab, namespace, device).
CLAIMS: list[Callable[[str, str, LinkMsg], bool]] = []


@dataclass
class NamespaceScan:
    links: dict[str, LinkMsg]
    addresses: list[AddrMsg]
    routes: list[RouteMsg]
    forwarding: tuple[bool, bool]  # IPv4, IPv6


@dataclass
class Scan:
    """The host's kernel state of one lab, read once per observation."""

    lab: str
    host: KernelHost
    links: dict[str, LinkMsg]  # the host namespace's devices, every one
    namespaces: dict[str, NamespaceScan]  # the lab's own namespaces
    foreign_namespaces: dict[str, str]  # `vnet-<lab>-*` namespaces that are not the lab's
    port_vlans: dict[int, tuple[tuple[int, bool, bool], ...]]
    details: bool = True  # False (destroy): settings that go with the device are not read
    orphaned: frozenset[str] = frozenset()  # retired bridges of the lab whose reaper died

    def claimed(self, namespace: str, link: LinkMsg) -> bool:
        return any(claim(self.lab, namespace, link) for claim in CLAIMS)


def scan(lab: str, host: KernelHost, details: bool = True) -> Scan:
    """`details` False (destroy): only the devices, not the namespaces' addresses, routes and
    forwarding, the bridge ports' VLANs or the devices' checksum offloads (they go with their
    namespace or device; reading them cost a 100-namespace destroy ~0.5 s)."""
    host.invalidate()
    links = host.links(HOST)
    namespaces: dict[str, NamespaceScan] = {}
    foreign: dict[str, str] = {}
    for name in netns.names():
        if not name.startswith(f"vnet-{lab}-") or not netns.exists(name):
            continue
        inside = host.links(name)
        lo = inside.get("lo")
        mark = lo.alias if lo is not None else None
        if not mark or not mark.startswith(lab_prefix(lab)):
            foreign[name] = holder(mark)
            continue
        if not details:
            namespaces[name] = NamespaceScan(inside, [], [], (False, False))
            continue
        namespaces[name] = NamespaceScan(inside, host.addresses(name), host.routes(name),
                                         (bool(host.forwarding(name, AF_INET)),
                                          bool(host.forwarding(name, AF_INET6))))
    orphaned = orphans(lab, links.values(), host)
    # Port VLANs are managed only on VLAN-filtering bridges: read them (one dump) when the lab has one.
    filtering = details and any(link.bridge is not None and link.bridge.vlan_filtering
                                and is_lab_device(lab, link, orphaned) for link in links.values())
    return Scan(lab, host, links, namespaces, foreign, host.port_vlans() if filtering else {}, details,
                orphaned)


def lab_scan(lab: str, ctx: Context) -> Scan:
    """The scan of `lab` for the observation in progress (made once, shared by mechanisms)."""
    host = kernel_host(ctx)
    return ctx.scratch(f"kernel-scan:{lab}", lambda: scan(lab, host, details=not ctx.teardown))


def kernel_host(ctx: Context) -> KernelHost:
    return ctx.connection("kernel", KernelHost)


@dataclass
class Unpaired:
    """Veth ends found, not yet paired: by (namespace, alias), with (ifindex, peer ifindex)."""

    ends: dict[tuple[str, str], DeviceEnd] = field(default_factory=dict)
    indexes: dict[tuple[str, str], tuple[int, int | None]] = field(default_factory=dict)


def device_end(found: Scan, namespace: str, link: LinkMsg, names: dict[int, str]) -> DeviceEnd:
    master = names.get(link.master) if link.master else None
    vlans = found.port_vlans.get(link.index) if namespace == HOST else None
    return DeviceEnd(namespace, link.name, link.alias or "", link.mac, link.mtu, master, link.up,
                     found.host.tx_checksum(namespace, link.name) if found.details else None, vlans,
                     link.port_flags)


def _tap_access(name: str) -> tuple[int | None, int | None, bool]:
    def read(attr: str) -> str:
        with open(f"/sys/class/net/{name}/{attr}") as handle:
            return handle.read().strip()
    try:
        owner, group, flags = int(read("owner")), int(read("group")), int(read("tun_flags"), 16)
    except (OSError, ValueError):
        return None, None, False
    return (owner if owner >= 0 else None), (group if group >= 0 else None), bool(flags & 0x0100)


def _device(found: Scan, out: Observation, unpaired: Unpaired, namespace: str, link: LinkMsg,
            names: dict[int, str]) -> None:
    if found.claimed(namespace, link):
        return
    resource: Resource
    if link.kind == "veth":
        slot = (namespace, link.alias or f"#{link.name}")
        unpaired.ends[slot] = device_end(found, namespace, link, names)
        unpaired.indexes[slot] = (link.index, link.peer_index)
        return
    if link.kind == "bridge" and namespace == HOST and link.bridge is not None:
        info = link.bridge
        resource = LinuxBridge(link.name, link.alias or "", info.stp_state != 0, info.forward_delay,
                               round(info.ageing_time), info.vlan_filtering, link.mtu, link.up)
    elif link.kind == "tun" and namespace == HOST:
        resource = Tap(device_end(found, namespace, link, names), *_tap_access(link.name))
    elif link.name != "lo":
        resource = StrayDevice(namespace, link.name, link.alias or "")
    else:
        return
    out.resources[resource.key] = resource


def observe(found: Scan) -> Observation:
    """The lab's kernel objects (veth ends unpaired, in `raw`), and the host names others hold."""
    out = Observation(foreign_namespaces=dict(found.foreign_namespaces))
    unpaired = Unpaired()
    names = {link.index: name for name, link in found.links.items()}
    for name, link in found.links.items():
        if is_lab_device(found.lab, link, found.orphaned):
            _device(found, out, unpaired, HOST, link, names)
        else:
            out.held[(HOST, name)] = holder(link.alias)
    for namespace, inside in found.namespaces.items():
        lo = inside.links["lo"]
        out.resources[Netns.key_of(namespace)] = Netns(namespace, lo.alias or "", *inside.forwarding)
        local = {link.index: n for n, link in inside.links.items()}
        for link in inside.links.values():
            _device(found, out, unpaired, namespace, link, local)
        for addr in inside.addresses:
            device = local.get(addr.index, "")
            if device not in ("", "lo") and not addr.address.lower().startswith("fe80:"):
                # the owner is found by `match`, once every mechanism's objects are known
                address = Address(namespace, device, f"{addr.address}/{addr.prefixlen}", ("", ""))
                out.resources[address.key] = address
        for route in inside.routes:
            if route.protocol in KERNEL_ROUTE_PROTOCOLS or route.type != RTN_UNICAST:
                continue
            default = "0.0.0.0/0" if route.family == AF_INET else "::/0"
            destination = f"{route.dst}/{route.dst_len}" if route.dst else default
            resource = Route(namespace, destination, route.gateway or "", route.priority or None)
            out.resources[resource.key] = resource
    out.raw = unpaired
    return out


def match(desired: DesiredState | None, observed: ObservedState, own: Observation) -> None:
    """The kernel's objects, with veth ends paired (as desired, else by peer index) and what is
    left as strays."""
    observed.resources.update(own.resources)
    unpaired: Unpaired = own.raw
    for want in (desired.resources.values() if desired else ()):
        if not isinstance(want, VethPair):
            continue
        slots = ((want.a.netns, want.a.alias), (want.b.netns, want.b.alias))
        if all(slot in unpaired.ends for slot in slots):
            pair = VethPair(unpaired.ends.pop(slots[0]), unpaired.ends.pop(slots[1]))
            observed.resources[pair.key] = pair
    _pair_by_peer(observed, unpaired)
    for end in unpaired.ends.values():
        stray = StrayDevice(end.netns, end.name, end.alias)
        observed.resources[stray.key] = stray
    owners(observed.resources)


def _pair_by_peer(observed: ObservedState, unpaired: Unpaired) -> None:
    """Pair the remaining ends whose peer indexes point at each other (a link the file no longer
    has): a whole pair can be deleted as one and, on rollback, created again."""
    by_index: dict[int, list[tuple[str, str]]] = {}
    for slot, (index, _) in unpaired.indexes.items():
        if slot in unpaired.ends:
            by_index.setdefault(index, []).append(slot)
    for slot in sorted(unpaired.ends):
        if slot not in unpaired.ends:
            continue
        index, peer = unpaired.indexes[slot]
        # Indexes are per namespace, so both directions must agree (each end names the other).
        partner = next((other for other in by_index.get(peer or -1, ())
                        if other != slot and other in unpaired.ends and unpaired.indexes[other][1] == index),
                       None)
        if partner is None:
            continue
        a, b = unpaired.ends.pop(slot), unpaired.ends.pop(partner)
        if a.netns == HOST and b.netns != HOST:
            a, b = b, a  # the namespace end names the pair, as the compiler does
        pair = VethPair(a, b)
        observed.resources[pair.key] = pair


def owners(resources: dict[ResourceKey, Resource]) -> None:
    """Point every address at the resource whose device it is on (whoever observed that)."""
    occupant = {place: r.key for r in resources.values() if not isinstance(r, Address)
                for place in r.occupies()}
    for key, resource in list(resources.items()):
        if isinstance(resource, Address):
            owner = occupant.get((resource.netns, resource.device), VethPair.key_of(
                f"{resource.netns}/{resource.device}"))
            if owner != resource.device_key:
                resources[key] = Address(resource.netns, resource.device, resource.address, owner)

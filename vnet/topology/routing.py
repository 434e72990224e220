"""The lab's IPv4/IPv6 forwarding as the file declares it: which node a packet from a node to an
address reaches, hop by hop, by longest-prefix match over connected subnets and `routes`.

Used to derive the routed pairs that must reach (a path both ways through forwarding nodes)
and by `trace` to follow a routed pair. A hop is taken only where the file makes it certain:
the gateway is an address of a node on the same L2 segment as the egress interface, and that
node forwards (`forwarding: true`). Tap nodes' guests are unknown: nothing is routed through
them. Source addresses follow the kernel's choice for a connected egress: the egress
interface's first address of the family.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import netaddr

from vnet.topology.lab import Interface, InterfaceKey, Lab
from vnet.topology.model import NetnsNode, VmNode
from vnet.topology.model import Route as RouteSpec
from vnet.topology.segments import Segment

MAX_HOPS = 16


@dataclass(frozen=True)
class Hop:
    """A packet leaves `node` through `iface` towards `via` (None: the destination is on-link)."""

    node: str
    iface: str
    via: netaddr.IPAddress | None


@dataclass(frozen=True)
class RoutedPath:
    hops: tuple[Hop, ...]
    delivered_to: InterfaceKey  # the interface that holds the destination address

    @property
    def source_interface(self) -> str:
        return self.hops[0].iface

    @property
    def routers(self) -> tuple[str, ...]:
        return tuple(hop.node for hop in self.hops[1:])


@dataclass
class Forwarding:
    """The lab's L3 view, built once per lab; `path` answers one (source node, address) query."""

    lab: Lab
    segment_of: dict[InterfaceKey, Segment]
    _owners: dict[tuple[int, int], Interface] = field(default_factory=dict)
    _memo: dict[tuple[str, tuple[int, int]], RoutedPath | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for interface in self.lab.interfaces.values():
            for address in interface.addresses:
                self._owners[(address.version, int(address.ip))] = interface

    def has_routes(self) -> bool:
        return any(_routes(node) for node in self.lab.topology.nodes.values())

    def owner(self, address: netaddr.IPAddress) -> Interface | None:
        return self._owners.get((address.version, int(address)))

    def path(self, source: str, destination: netaddr.IPAddress) -> RoutedPath | None:
        key = (source, (destination.version, int(destination)))
        if key not in self._memo:
            self._memo[key] = self._walk(source, destination)
        return self._memo[key]

    def source_address(self, path: RoutedPath, version: int) -> netaddr.IPAddress | None:
        egress = self.lab.interfaces[(path.hops[0].node, path.hops[0].iface)]
        return next((a.ip for a in egress.addresses if a.version == version), None)

    def _walk(self, source: str, destination: netaddr.IPAddress) -> RoutedPath | None:
        node, hops = source, list[Hop]()
        for _ in range(MAX_HOPS):
            connected = on_link(self.lab, node, destination)
            if connected is not None:
                target = self._neighbour(connected, destination)
                if target is None:
                    return None
                return RoutedPath((*hops, Hop(node, connected.name, None)), target.key)
            step = next_hop(self.lab, node, destination)
            if step is None:
                return None
            egress, gateway = step
            router = self._neighbour(egress, gateway)
            if router is None:
                return None
            hops.append(Hop(node, egress.name, gateway))
            mine = next((i for i in self.lab.interfaces_of(router.node)
                         if any(a.ip == destination for a in i.addresses)), None)
            if mine is not None:  # an address of the router itself (any of its interfaces)
                return RoutedPath(tuple(hops), mine.key)
            if not getattr(self.lab.topology.nodes[router.node], "forwarding", False):
                return None
            node = router.node
        return None

    def _neighbour(self, egress: Interface, address: netaddr.IPAddress) -> Interface | None:
        """The interface that holds `address` on `egress`'s L2 segment, if any."""
        owner = self.owner(address)
        segment = self.segment_of.get(egress.key)
        if owner is None or segment is None or self.segment_of.get(owner.key) is not segment:
            return None
        return owner



def on_link(lab: Lab, node: str, destination: netaddr.IPAddress) -> Interface | None:
    """The interface of `node` with the most specific subnet holding `destination`."""
    best: tuple[int, Interface] | None = None
    for interface in lab.interfaces_of(node):
        for address in interface.addresses:
            if address.version == destination.version and destination in address.cidr and (
                    best is None or address.prefixlen > best[0]):
                best = (address.prefixlen, interface)
    return best[1] if best else None


def next_hop(lab: Lab, node: str,
             destination: netaddr.IPAddress) -> tuple[Interface, netaddr.IPAddress] | None:
    """(egress interface, gateway) of the node's best route to `destination`."""
    candidates = []
    for route in _routes(lab.topology.nodes[node]):
        gateway = netaddr.IPAddress(route.via)
        if gateway.version != destination.version:
            continue
        prefix = netaddr.IPNetwork("::/0" if gateway.version == 6 else "0.0.0.0/0") \
            if route.to == "default" else netaddr.IPNetwork(route.to)
        if destination in prefix:
            candidates.append((-prefix.prefixlen, route.metric or 0, gateway))
    for _, _, gateway in sorted(candidates, key=lambda c: (c[0], c[1])):
        egress = on_link(lab, node, gateway)
        if egress is not None:
            return egress, gateway
    return None


def egress(lab: Lab, node: str, destination: netaddr.IPAddress) -> Interface | None:
    """The interface a packet from `node` to `destination` leaves by, as the file declares it."""
    found = on_link(lab, node, destination)
    if found is not None:
        return found
    step = next_hop(lab, node, destination)
    return step[0] if step is not None else None


def _routes(node: object) -> tuple[RouteSpec, ...]:
    """The node's declared routes (netns and vm nodes have them; a tap node's guest is unknown)."""
    if isinstance(node, NetnsNode | VmNode):
        return tuple(node.routes)
    return ()

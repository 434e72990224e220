"""L2 segments: which node interfaces share a broadcast domain (README, "L2 segments and derived
reachability").

Each switch is split into per-VLAN domains `(switch, tag)`; tag None is untagged. A switch port
maps the tag a frame has on the wire to the domain it joins inside the switch:

    OVS           access N: untagged -> N      trunk T: t -> t      neither: every tag -> itself
    Linux, vlan_filtering: access N: untagged -> N; trunk T: t -> t; neither: untagged -> 1 (PVID)
    Linux, VLAN-unaware:  every tag -> itself (one transparent segment; untagged nodes are None)

A link joins, for every wire tag both ports accept, the two domains it maps to. Node interfaces
send untagged frames. Legacy SR-IOV VFs of one PF with the same VLAN share the NIC's embedded
switch; a switchdev VF reaches the switch its representor is on. The connected components that
hold node interfaces are the segments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vnet.topology.lab import InterfaceKey, Lab, LinkInfo
from vnet.topology.model import LinuxSwitch, OvsSwitch, SwitchBase
from vnet.topology.names import Endpoint, MacvlanEnd, NodeEnd, SwitchEnd, TunnelEnd

Tag = int | None
Vertex = tuple[Any, ...]  # ("if", node, iface), ("dom", switch, tag), ("wire", ...), ("vf", pf, vf)
LINUX_DEFAULT_PVID = 1


@dataclass(frozen=True)
class Segment:
    """One L2 broadcast domain and the node interfaces on it."""

    name: str
    interfaces: tuple[InterfaceKey, ...]
    domains: tuple[tuple[str, Tag], ...]  # (switch, tag) pairs it spans
    external: bool = False  # reaches outside the lab (a legacy VF's physical uplink)

    @property
    def vlans(self) -> tuple[int, ...]:
        return tuple(sorted({tag for _, tag in self.domains if tag is not None}))


def port_map(switch: SwitchBase, link: LinkInfo, universe: Iterable[Tag]) -> dict[Tag, Tag]:
    """Wire tag -> domain tag for the port `link` makes on `switch`."""
    spec = link.spec
    aware = not isinstance(switch, LinuxSwitch) or switch.vlan_filtering
    if not aware:
        return {tag: tag for tag in universe}
    if spec.vlan is not None:
        return {None: spec.vlan}
    if spec.trunk is not None:
        native = {None: spec.native_vlan, spec.native_vlan: spec.native_vlan} if spec.native_vlan else {}
        return {**{tag: tag for tag in spec.trunk}, **native}
    if isinstance(switch, OvsSwitch):
        return {tag: tag for tag in universe}
    return {None: LINUX_DEFAULT_PVID}


def egress_map(switch: SwitchBase, link: LinkInfo, universe: Iterable[Tag]) -> dict[Tag, Tag]:
    """port_map without the tagged alias of a native VLAN: the wire tags the port also *sends*
    with. A native VLAN leaves a trunk untagged, so a frame tagged with it only ever comes in."""
    mapping = port_map(switch, link, universe)
    native = link.spec.native_vlan
    aware = not isinstance(switch, LinuxSwitch) or switch.vlan_filtering
    if aware and link.spec.trunk is not None and native is not None:
        mapping.pop(native, None)
    return mapping


def _universe(links: Iterable[LinkInfo]) -> list[Tag]:
    tags: set[int] = {LINUX_DEFAULT_PVID}
    for link in links:
        tags.update(link.spec.trunk or ())
        if link.spec.native_vlan is not None:
            tags.add(link.spec.native_vlan)
        if link.spec.vlan is not None:
            tags.add(link.spec.vlan)
    return [None, *sorted(tags)]


class _Components:
    """Connected components, by union-find: every load computes the segments, and networkx
    takes ~0.1 s to import (a third of a no-op `vnet plan`)."""

    def __init__(self) -> None:
        self.parent: dict[Vertex, Vertex] = {}

    def add_node(self, vertex: Vertex) -> None:
        self.parent.setdefault(vertex, vertex)

    def find(self, vertex: Vertex) -> Vertex:
        self.add_node(vertex)
        root = vertex
        while self.parent[root] != root:
            root = self.parent[root]
        while vertex != root:  # path compression: point the whole way at the root
            self.parent[vertex], vertex = root, self.parent[vertex]
        return root

    def add_edge(self, a: Vertex, b: Vertex) -> bool:
        """Join a's and b's components; False if they were one already (the edge closes a cycle)."""
        root_a, root_b = self.find(a), self.find(b)
        self.parent[root_a] = root_b
        return root_a != root_b

    def components(self) -> list[set[Vertex]]:
        groups: dict[Vertex, set[Vertex]] = {}
        for vertex in self.parent:
            groups.setdefault(self.find(vertex), set()).add(vertex)
        return list(groups.values())


class _SegmentBuilder:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.universe = _universe(lab.links)
        self.graph = _Components()

    def vertex(self, end: Endpoint, link: LinkInfo, other: Endpoint) -> Vertex | None:
        """The vertex an untagged frame from `other` enters at `end`."""
        if isinstance(end, NodeEnd):
            return ("if", end.node, end.iface)
        if isinstance(end, SwitchEnd):
            mapping = port_map(self.lab.topology.switches[end.name], link, self.universe)
            return ("dom", end.name, mapping[None]) if None in mapping else None
        if isinstance(end, TunnelEnd):  # a tunnel leads out of the lab, like a physical uplink
            return ("wire", str(end), link.spec.key)
        if isinstance(end, MacvlanEnd):  # so does a host device: its macvlans share its wire
            return ("wire", str(end), None)
        pf = self.lab.topology.sriov[end.pf]
        if pf.eswitch == "switchdev":
            return ("vf", end.pf, end.vf)
        vf = pf.vfs.get(end.vf)
        return ("wire", end.pf, vf.vlan if vf is not None else None)

    def add_link(self, link: LinkInfo) -> None:
        a, b = link.ends
        for end in (a, b):
            if isinstance(end, NodeEnd):
                self.graph.add_node(("if", end.node, end.iface))
        if isinstance(a, SwitchEnd) and isinstance(b, SwitchEnd):
            self.add_trunk(link, a, b)
            return
        va, vb = self.vertex(a, link, b), self.vertex(b, link, a)
        if va is not None and vb is not None:
            self.graph.add_edge(va, vb)

    def add_trunk(self, link: LinkInfo, a: SwitchEnd, b: SwitchEnd) -> None:
        switches = self.lab.topology.switches
        map_a = port_map(switches[a.name], link, self.universe)
        map_b = port_map(switches[b.name], link, self.universe)
        for wire in map_a.keys() & map_b.keys():
            self.graph.add_edge(("dom", a.name, map_a[wire]), ("dom", b.name, map_b[wire]))

    def segments(self) -> list[Segment]:
        out: list[Segment] = []
        for component in self.graph.components():
            interfaces = sorted((v[1], v[2]) for v in component if v[0] == "if")
            if not interfaces:
                continue
            # Tagged domains first, so a VLAN's segment is named after a VLAN-aware switch.
            domains = sorted(((v[1], v[2]) for v in component if v[0] == "dom"),
                             key=lambda d: (d[1] is None, d[0], d[1] or 0))
            external = any(v[0] == "wire" for v in component)
            out.append(Segment(_name(interfaces, domains, component), tuple(interfaces),
                               tuple(domains), external))
        return sorted(out, key=lambda s: s.name)


def _name(interfaces: list[InterfaceKey], domains: list[tuple[str, Tag]], component: set[Vertex]) -> str:
    if domains:
        switch, tag = domains[0]
        return switch if tag is None else f"{switch}.{tag}"
    wires = sorted(_wire_name(v) for v in component if v[0] in ("wire", "vf"))
    if wires:
        return wires[0]
    return "--".join(f"{node}:{iface}" for node, iface in interfaces)


def _wire_name(vertex: Vertex) -> str:
    where = str(vertex[1]) if ":" in str(vertex[1]) else f"sriov:{vertex[1]}"
    return where if vertex[2] is None else f"{where}.{vertex[2]}"


def compute_segments(lab: Lab) -> list[Segment]:
    """Every L2 segment of the lab that holds at least one node interface, sorted by name."""
    builder = _SegmentBuilder(lab)
    for link in lab.links:
        builder.add_link(link)
    return builder.segments()


@dataclass(frozen=True)
class L2Loop:
    """Switch-to-switch links that close a cycle of switch domains: a frame flooded into it
    comes back, is flooded again and circles forever unless spanning tree blocks a port."""

    links: tuple[int, ...]  # indexes in `links:`, in file order
    switches: tuple[str, ...]
    vlans: tuple[int, ...]  # the VLANs it loops in; empty when untagged frames loop


def l2_loops(switches: Mapping[str, SwitchBase], links: Sequence[LinkInfo]) -> list[L2Loop]:
    """Every L2 loop among the switches, one per set of links (whatever VLANs it loops in).

    The graph has a vertex per switch domain and one per (link, domain pair) that the link
    joins, so that two parallel links are a cycle too; a loop is a biconnected component with
    more than one edge. A link joins two domains for each wire tag both of its ports send
    (`egress_map`): then each domain crosses a link on one tag, and a tree of switches has no
    loop whatever its VLANs. Loops through the outside world (legacy VFs' uplinks, tunnels,
    macvlan parents) are not in the file and not found."""
    universe = _universe(links)
    edges: list[tuple[Vertex, Vertex]] = []
    for link in links:
        a, b = link.ends
        if not (isinstance(a, SwitchEnd) and isinstance(b, SwitchEnd)):
            continue
        map_a = egress_map(switches[a.name], link, universe)
        map_b = egress_map(switches[b.name], link, universe)
        pairs = {(("dom", a.name, map_a[w]), ("dom", b.name, map_b[w])) for w in map_a.keys() & map_b.keys()}
        for pair in pairs:
            middle = ("link", link.index, *pair)
            edges += [(pair[0], middle), (middle, pair[1])]
    forest = _Components()
    if all(forest.add_edge(u, v) for u, v in edges):  # no cycle (most labs): no loop, no networkx
        return []
    import networkx as nx  # noqa: PLC0415 (slow to import: see _Components)

    graph: nx.Graph = nx.Graph(edges)
    found: dict[tuple[int, ...], tuple[set[str], set[Tag]]] = {}
    for component in nx.biconnected_components(graph):
        if len(component) < 3:  # one edge (half of a link): not on any cycle
            continue
        key = tuple(sorted({v[1] for v in component if v[0] == "link"}))
        names, tags = found.setdefault(key, (set(), set()))
        names.update(v[1] for v in component if v[0] == "dom")
        tags.update(v[2] for v in component if v[0] == "dom")
    return [L2Loop(key, tuple(sorted(names)), _loop_vlans(tags))
            for key, (names, tags) in sorted(found.items())]


def _loop_vlans(tags: set[Tag]) -> tuple[int, ...]:
    """The VLANs a loop is in; none when untagged frames loop too (every VLAN does then)."""
    return () if None in tags else tuple(sorted(t for t in tags if t is not None))

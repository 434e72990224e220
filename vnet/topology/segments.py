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

from collections.abc import Iterable
from dataclasses import dataclass

import networkx as nx

from vnet.topology.lab import InterfaceKey, Lab, LinkInfo
from vnet.topology.model import LinuxSwitch, OvsSwitch, SwitchBase
from vnet.topology.names import Endpoint, MacvlanEnd, NodeEnd, SwitchEnd, TunnelEnd

Tag = int | None
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


def _universe(lab: Lab) -> list[Tag]:
    tags: set[int] = {LINUX_DEFAULT_PVID}
    for link in lab.links:
        tags.update(link.spec.trunk or ())
        if link.spec.native_vlan is not None:
            tags.add(link.spec.native_vlan)
        if link.spec.vlan is not None:
            tags.add(link.spec.vlan)
    return [None, *sorted(tags)]


class _SegmentBuilder:
    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.universe = _universe(lab)
        self.graph: nx.Graph = nx.Graph()

    def vertex(self, end: Endpoint, link: LinkInfo, other: Endpoint) -> tuple[object, ...] | None:
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
        for component in nx.connected_components(self.graph):
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


def _name(interfaces: list[InterfaceKey], domains: list[tuple[str, Tag]],
          component: set[tuple[object, ...]]) -> str:
    if domains:
        switch, tag = domains[0]
        return switch if tag is None else f"{switch}.{tag}"
    wires = sorted(_wire_name(v) for v in component if v[0] in ("wire", "vf"))
    if wires:
        return wires[0]
    return "--".join(f"{node}:{iface}" for node, iface in interfaces)


def _wire_name(vertex: tuple[object, ...]) -> str:
    where = str(vertex[1]) if ":" in str(vertex[1]) else f"sriov:{vertex[1]}"
    return where if vertex[2] is None else f"{where}.{vertex[2]}"


def compute_segments(lab: Lab) -> list[Segment]:
    """Every L2 segment of the lab that holds at least one node interface, sorted by name."""
    builder = _SegmentBuilder(lab)
    for link in lab.links:
        builder.add_link(link)
    return builder.segments()

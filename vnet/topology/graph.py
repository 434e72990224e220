"""The lab as a networkx graph: nodes, switches and PFs as vertices, links as edges."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import networkx as nx

from vnet.topology.lab import Lab, LinkInfo
from vnet.topology.names import Endpoint, MacvlanEnd, NodeEnd, SwitchEnd, TunnelEnd, VfEnd
from vnet.topology.reach import Probe, expectations
from vnet.topology.segments import Segment, compute_segments


def vertex_of(end: Endpoint) -> str:
    """Graph vertex of an endpoint: the node, the switch, or `sriov:<pf>`."""
    if isinstance(end, NodeEnd):
        return end.node
    if isinstance(end, SwitchEnd):
        return end.name
    if isinstance(end, TunnelEnd | MacvlanEnd):
        return str(end)
    return f"sriov:{end.pf}"


def _add_vertices(graph: nx.MultiGraph, lab: Lab) -> None:
    topo = lab.topology
    for name, node in topo.nodes.items():
        graph.add_node(name, role="node", kind=node.kind)
    for name, switch in topo.switches.items():
        graph.add_node(name, role="switch", kind=switch.type)
    for pf, spec in topo.sriov.items():
        graph.add_node(f"sriov:{pf}", role="pf", kind=spec.eswitch)


def _edge_attrs(lab: Lab, link: LinkInfo) -> dict[str, Any]:
    spec = link.spec
    ifaces = [lab.interfaces[(e.node, e.iface)] for e in link.ends if isinstance(e, NodeEnd)]
    vfs = [e.vf for e in link.ends if isinstance(e, VfEnd)]
    return {
        "link": link,
        "index": link.index,
        "ends": tuple(str(e) for e in link.ends),
        "vlan": spec.vlan,
        "trunk": spec.trunk,
        "mtu": spec.mtu,
        "interfaces": tuple(str(i) for i in ifaces),
        "addresses": tuple(str(a) for i in ifaces for a in i.addresses),
        "vf": vfs[0] if vfs else None,
    }


def _build(lab: Lab) -> nx.MultiGraph:
    graph: nx.MultiGraph = nx.MultiGraph(lab=lab.name)
    _add_vertices(graph, lab)
    for link in lab.links:
        for end in link.ends:
            if isinstance(end, TunnelEnd):
                graph.add_node(str(end), role="tunnel", kind=end.kind)
            elif isinstance(end, MacvlanEnd):
                graph.add_node(str(end), role="host-device", kind="macvlan")
        a, b = (vertex_of(e) for e in link.ends)
        graph.add_edge(a, b, key=link.index, **_edge_attrs(lab, link))
    return graph


@dataclass(frozen=True)
class LabGraph:
    """A checked lab with its graph; segments and expectations are computed on first use."""

    lab: Lab
    graph: nx.MultiGraph = field(repr=False)

    @cached_property
    def segments(self) -> list[Segment]:
        return compute_segments(self.lab)

    @cached_property
    def segment_of(self) -> dict[tuple[str, str], Segment]:
        return {key: s for s in self.segments for key in s.interfaces}

    def expectations(self) -> list[Probe]:
        """What `verify` proves: the `expect` list, or the derived reachability matrix."""
        return expectations(self.lab, self.segments)

    def summary(self) -> dict[str, Any]:
        """A stable, JSON-friendly description (golden tests, the Python API)."""
        lab = self.lab
        return {
            "lab": lab.name,
            "nodes": {n: v.kind for n, v in sorted(lab.topology.nodes.items())},
            "switches": {n: v.type for n, v in sorted(lab.topology.switches.items())},
            "links": len(lab.links),
            "interfaces": {
                str(i): {"mac": i.mac, "addresses": [str(a) for a in i.addresses]}
                for i in sorted(lab.interfaces.values(), key=lambda i: i.key)
            },
            "segments": [
                {"name": s.name, "vlans": list(s.vlans),
                 "interfaces": [f"{n}:{i}" for n, i in s.interfaces]}
                for s in self.segments
            ],
            "expect": {
                "source": "listed" if lab.topology.expect is not None else "derived",
                "probes": [str(p) for p in self.expectations()],
            },
        }


def build_graph(lab: Lab) -> LabGraph:
    return LabGraph(lab, _build(lab))

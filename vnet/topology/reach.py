"""Reachability expectations: the `expect` list, or the matrix derived from the graph.

Derived rule (design.md §3): two interfaces on the same L2 segment and the same subnet must
reach each other (between nodes vnet runs: a tap node's guest is started by someone else, so
it is a target only when listed); nodes none of whose segments are connected must not. Segments are connected
by nodes that forward (routers), by tap nodes (their guest is unknown, so vnet assumes it may
forward) and by a legacy VF's physical uplink. Pairs that need routing are only checked when
listed in `expect`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import netaddr
import networkx as nx

from vnet.topology.lab import Interface, Lab
from vnet.topology.model import NodeBase
from vnet.topology.segments import Segment


@dataclass(frozen=True)
class Probe:
    """One expectation: ICMP from inside `source` to `addresses` of `target`.

    reach=True: every address must answer (one per IP version the pair shares, so a dual-stack
    pair proves IPv4 and IPv6); reach=False: none of them may."""

    source: str
    target: str  # node, or node:iface as listed
    addresses: tuple[netaddr.IPNetwork, ...]
    reach: bool
    reason: str

    def __str__(self) -> str:
        arrow = "->" if self.reach else "-x"
        shown = ", ".join(str(a.ip) for a in self.addresses)
        return f"{self.source} {arrow} {self.target} ({shown})"


def _shared_subnets(a: Interface, b: Interface) -> list[netaddr.IPNetwork]:
    """b's addresses on subnets a also has an address on: the first one per IP version."""
    found: dict[int, netaddr.IPNetwork] = {}
    for theirs in b.addresses:
        for mine in a.addresses:
            if mine.version == theirs.version and theirs.ip in mine.cidr and mine.ip in theirs.cidr:
                found.setdefault(theirs.version, theirs)
    return [found[v] for v in sorted(found)]


def _can_probe(lab: Lab, node: str) -> bool:
    spec: NodeBase = lab.topology.nodes[node]
    return spec.can_probe


def same_segment_probes(lab: Lab, segments: list[Segment]) -> Iterator[Probe]:
    seen: set[tuple[str, str]] = set()
    for segment in segments:
        members = [lab.interfaces[key] for key in segment.interfaces]
        for a in members:
            if not _can_probe(lab, a.node):
                continue
            for b in members:
                # Tap nodes' guests run outside vnet: they are checked only when listed.
                if not _can_probe(lab, b.node):
                    continue
                shared = _shared_subnets(a, b) if a.node != b.node else []
                if shared and (a.node, b.node) not in seen:
                    seen.add((a.node, b.node))
                    subnets = " and ".join(str(s.cidr) for s in shared)
                    yield Probe(a.node, b.node, tuple(shared), True,
                                f"same segment {segment.name} and subnet {subnets}")


def _components(lab: Lab, segments: list[Segment]) -> dict[str, set[int]]:
    """node -> ids of the connected groups of segments its interfaces are on."""
    graph: nx.Graph = nx.Graph()
    seg_of = {key: s.name for s in segments for key in s.interfaces}
    graph.add_nodes_from(s.name for s in segments)
    external = [s.name for s in segments if s.external]
    nx.add_path(graph, external)
    for name, node in lab.topology.nodes.items():
        if getattr(node, "forwarding", False) or not node.can_probe:
            nx.add_path(graph, sorted({seg_of[i.key] for i in lab.interfaces_of(name)}))
    group = {seg: k for k, comp in enumerate(nx.connected_components(graph)) for seg in comp}
    out: dict[str, set[int]] = {}
    for key, seg in seg_of.items():
        out.setdefault(key[0], set()).add(group[seg])
    return out


# Above this many isolation pairs, each source probes one node of every group of segments it
# must not reach (instead of every node): 1000 isolated hosts would otherwise need ~1M probes.
ALL_PAIRS_LIMIT = 5000


def isolation_probes(lab: Lab, segments: list[Segment]) -> Iterator[Probe]:
    components = _components(lab, segments)
    addresses = {n: [a for i in lab.interfaces_of(n) for a in i.addresses] for n in components}
    sample = len(components) ** 2 > ALL_PAIRS_LIMIT
    for source in sorted(components):
        versions = {a.version for a in addresses[source]}
        if not _can_probe(lab, source) or not versions:
            continue
        covered: set[frozenset[int]] = set()
        for target in sorted(components):
            if target == source or components[source] & components[target]:
                continue
            targets = tuple(a for a in addresses[target] if a.version in versions)
            group = frozenset(components[target])
            if not targets or (sample and group in covered):
                continue
            covered.add(group)
            reason = "no path between their segments" + (" (one node per segment group)" if sample else "")
            yield Probe(source, target, targets, False, reason)


def listed_probes(lab: Lab) -> Iterator[Probe]:
    for entry in lab.topology.expect or ():
        node, _, iface = entry.to.partition(":")
        theirs = [i for i in lab.interfaces_of(node) if not iface or i.name == iface]
        mine = lab.interfaces_of(entry.source)
        versions = {a.version for i in mine for a in i.addresses}
        candidates = [a for i in theirs for a in i.addresses if a.version in versions]
        if entry.reach:  # per IP version: the address on a shared subnet, else the first one
            per_version: dict[int, netaddr.IPNetwork] = {}
            for a in mine:
                for b in theirs:
                    for address in _shared_subnets(a, b):
                        per_version.setdefault(address.version, address)
            for address in candidates:
                per_version.setdefault(address.version, address)
            chosen = tuple(per_version[v] for v in sorted(per_version))
        else:
            chosen = tuple(candidates)
        yield Probe(entry.source, entry.to, chosen, entry.reach, "listed in expect")


def expectations(lab: Lab, segments: list[Segment]) -> list[Probe]:
    """The `expect` list when the file has one, else the derived matrix."""
    if lab.topology.expect is not None:
        return list(listed_probes(lab))
    return [*same_segment_probes(lab, segments), *isolation_probes(lab, segments)]

"""What `vnet verify` proves: the `expect` list, or the matrix derived from the graph, as rows.

A row (`Probe`) is one probe of one target address from inside one source node, with one
protocol: ICMP echo, a TCP connection, a UDP datagram, or a don't-fragment ICMP echo of a
given size (an MTU row). `reach=True` rows must answer (echo reply, TCP `open`, UDP received by
vnet's listener, the whole DF frame); `reach=False` rows must not.

Derived rule (no `expect` list):
- two interfaces on the same L2 segment sharing a subnet: for each subnet they share (so each
  address family), the source must reach the target by ICMP and TCP, and a DF echo as large
  as both interfaces' MTU allow must arrive (the segment MTU);
- two nodes joined through forwarding nodes, with a route there and a route back (routing.py):
  ICMP and TCP, per family;
- nodes none of whose segments are connected (by forwarding nodes, tap nodes whose guest may
  forward, or links out of the lab) must not reach each other: ICMP and TCP to every address.
Tap nodes' guests run outside vnet: they are targets only when listed.

Positive controls: an isolation row proves nothing if its source cannot reach anything at all
(its link is down, its probes are broken). Each source with isolation rows therefore has, for
each protocol and family of them, a row it must reach; when the list has none, the first
segment peer is added as a control (`control=True`). An isolation whose controls fail is
reported `unproven` by verify.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import netaddr
import networkx as nx

from vnet.topology.lab import Interface, Lab
from vnet.topology.model import DEFAULT_MTU, NodeBase
from vnet.topology.routing import Forwarding
from vnet.topology.segments import Segment

PROTOCOLS = ("icmp", "tcp", "udp")
# Port of the listener vnet runs on a target for TCP/UDP rows that name no port (echo's port).
DEFAULT_PORT = 7
# Above this many pairs, each source probes one node of every group of segments it must not
# reach (and, routed, one node per target segment) instead of every node: 1000 hosts would
# otherwise need ~1M probes.
ALL_PAIRS_LIMIT = 5000


@dataclass(frozen=True)
class Probe:
    """One row: `proto` from inside `source` to `address` of `target`.

    `size`: a don't-fragment ICMP echo of this many bytes (the whole IP packet), for MTU rows.
    `port`: the TCP/UDP port (vnet runs a listener there unless something already listens)."""

    source: str
    target: str  # node, or node:iface as listed
    address: netaddr.IPNetwork
    reach: bool
    reason: str
    proto: str = "icmp"
    port: int | None = None
    size: int | None = None
    control: bool = False

    @property
    def family(self) -> str:
        return f"ipv{self.address.version}"

    @property
    def what(self) -> str:
        """`icmp`, `tcp/7`, `udp/53`, `mtu 1500`."""
        if self.size is not None:
            return f"mtu {self.size}"
        return self.proto if self.port is None else f"{self.proto}/{self.port}"

    def __str__(self) -> str:
        arrow = "->" if self.reach else "-x"
        kind = "" if self.what == "icmp" else f" {self.what}"
        control = " [control]" if self.control else ""
        return f"{self.source} {arrow} {self.target}{kind} ({self.address.ip}){control}"


def _shared_subnets(a: Interface, b: Interface) -> list[netaddr.IPNetwork]:
    """b's addresses on subnets a also has an address on, one per subnet, IPv4 first."""
    found: dict[tuple[int, int, int], netaddr.IPNetwork] = {}
    for theirs in b.addresses:
        for mine in a.addresses:
            if mine.version == theirs.version and theirs.ip in mine.cidr and mine.ip in theirs.cidr:
                found.setdefault((theirs.version, int(theirs.cidr.ip), theirs.prefixlen), theirs)
    return [found[k] for k in sorted(found)]


def _can_probe(lab: Lab, node: str) -> bool:
    spec: NodeBase = lab.topology.nodes[node]
    return spec.can_probe


def mtu_of(interface: Interface) -> int:
    return interface.mtu or DEFAULT_MTU


def _pair_rows(source: str, target: str, address: netaddr.IPNetwork, reason: str,
               size: int | None) -> Iterator[Probe]:
    yield Probe(source, target, address, True, reason)
    yield Probe(source, target, address, True, reason, "tcp", DEFAULT_PORT)
    if size is not None:
        yield Probe(source, target, address, True, reason, size=size)


def same_segment_probes(lab: Lab, segments: list[Segment]) -> Iterator[Probe]:
    for segment in segments:
        members = [lab.interfaces[key] for key in segment.interfaces]
        for a in members:
            if not _can_probe(lab, a.node):
                continue
            for b in members:
                # Tap nodes' guests run outside vnet: they are checked only when listed.
                if a.node == b.node or not _can_probe(lab, b.node):
                    continue
                for address in _shared_subnets(a, b):
                    reason = f"same segment {segment.name}, subnet {address.cidr}"
                    yield from _pair_rows(a.node, b.node, address, reason, min(mtu_of(a), mtu_of(b)))


def routed_probes(lab: Lab, segments: list[Segment], direct: set[tuple[str, str]]) -> Iterator[Probe]:
    """Pairs joined through forwarding nodes, with a route to the target and one back."""
    forwarding = Forwarding(lab, {key: s for s in segments for key in s.interfaces})
    if not forwarding.has_routes():
        return
    nodes = sorted(n for n in lab.topology.nodes if _can_probe(lab, n))
    sample = len(nodes) ** 2 > ALL_PAIRS_LIMIT
    for source in nodes:
        covered: set[tuple[int, str]] = set()
        for target in nodes:
            if target == source or (source, target) in direct:
                continue
            for version in (4, 6):
                found = _routed_address(lab, forwarding, source, target, version)
                if found is None:
                    continue
                address, segment, routers = found
                if sample and (version, segment) in covered:
                    continue
                covered.add((version, segment))
                reason = f"routed via {', '.join(routers)}, routes both ways"
                yield from _pair_rows(source, target, address, reason, None)


def _routed_address(lab: Lab, forwarding: Forwarding, source: str, target: str,
                    version: int) -> tuple[netaddr.IPNetwork, str, tuple[str, ...]] | None:
    """The target's first address of `version` reached through routers, and back."""
    for interface in lab.interfaces_of(target):
        for address in (a for a in interface.addresses if a.version == version):
            there = forwarding.path(source, address.ip)
            if there is None or not there.routers or there.delivered_to[0] != target:
                continue
            back_to = forwarding.source_address(there, version)
            back = forwarding.path(target, back_to) if back_to is not None else None
            if back is not None and back.delivered_to[0] == source:
                segment = forwarding.segment_of[interface.key].name
                return address, segment, there.routers
    return None


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
            targets = [a for a in addresses[target] if a.version in versions]
            group = frozenset(components[target])
            if not targets or (sample and group in covered):
                continue
            covered.add(group)
            reason = "no path between their segments" + (" (one node per segment group)" if sample else "")
            for address in targets:
                yield Probe(source, target, address, False, reason)
                yield Probe(source, target, address, False, reason, "tcp", DEFAULT_PORT)


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
            chosen = [per_version[v] for v in sorted(per_version)]
        else:
            chosen = candidates
        port = entry.port if entry.port is not None or entry.proto == "icmp" else DEFAULT_PORT
        for address in chosen:
            yield Probe(entry.source, entry.to, address, entry.reach, "listed in expect", entry.proto,
                        port, entry.mtu)


def _peer_rows(lab: Lab, segments: list[Segment], source: str) -> Iterator[Probe]:
    """Same-segment rows from `source` to its peers, nearest first (for positive controls)."""
    members = {key: s for s in segments for key in s.interfaces}
    for mine in lab.interfaces_of(source):
        segment = members.get(mine.key)
        if segment is None:
            continue
        for key in segment.interfaces:
            peer = lab.interfaces[key]
            if peer.node != source and _can_probe(lab, peer.node):
                for address in _shared_subnets(mine, peer):
                    yield Probe(source, peer.node, address, True,
                                f"positive control for {source}'s isolation rows (segment {segment.name})",
                                control=True)


def with_controls(lab: Lab, segments: list[Segment], rows: Iterable[Probe]) -> list[Probe]:
    """`rows`, plus a control row for each (source, protocol, family) that is only isolated."""
    out = list(rows)
    proving = {(p.source, p.proto, p.address.version) for p in out if p.reach}
    needed = sorted({(p.source, p.proto, p.address.version) for p in out if not p.reach} - proving)
    for source, proto, version in needed:
        control = next((p for p in _peer_rows(lab, segments, source) if p.address.version == version), None)
        if control is not None:
            port = DEFAULT_PORT if proto != "icmp" else None
            out.append(Probe(control.source, control.target, control.address, True, control.reason,
                             proto, port, control=True))
    return out


def expectations(lab: Lab, segments: list[Segment]) -> list[Probe]:
    """The `expect` list when the file has one, else the derived matrix; with controls."""
    if lab.topology.expect is not None:
        rows: list[Probe] = list(listed_probes(lab))
    else:
        rows = list(same_segment_probes(lab, segments))
        direct = {(p.source, p.target) for p in rows}
        rows += [*routed_probes(lab, segments, direct), *isolation_probes(lab, segments)]
    return _unique(with_controls(lab, segments, rows))


def _unique(rows: list[Probe]) -> list[Probe]:
    seen: set[tuple[object, ...]] = set()
    out = []
    for p in rows:
        key = (p.source, p.target, str(p.address), p.proto, p.port, p.size, p.reach)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out

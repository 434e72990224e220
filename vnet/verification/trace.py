"""trace: the path a packet takes from one node to another, from the file, checked on the host.

The route comes from the file (vnet/topology/routing.py): one leg per L3 hop, from the sender's
interface to the next router's (or the target's), each leg the shortest L2 path in the lab graph.
Each hop names its link, the host devices on it and the VLAN handling. Then the host is asked:
host devices must exist and be up, a router must forward the packet's IP version, and every OVS
ingress is run through vswitchd's `ofproto/trace` with the frame that leg carries (the protocol
and port asked for). A drop is reported on the bridge whose OpenFlow rule (or NORMAL action)
drops it, naming the rule; output ports are named, not numbered. `mtu_culprit` finds, for a
don't-fragment probe that did not arrive, the first device on the path whose MTU is smaller.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import netaddr
import networkx as nx

from vnet.errors import InputError, UnavailableError, VnetError
from vnet.marks import mark, netns_name
from vnet.mechanisms.kernel.host import KernelHost
from vnet.mechanisms.kernel.resources import DeviceEnd, Tap, VethPair
from vnet.mechanisms.ovs import unixctl as ovs_unixctl
from vnet.mechanisms.ovs.resources import OvsInternal, OvsPort
from vnet.netlink.constants import AF_INET, AF_INET6
from vnet.netlink.parse import LinkMsg
from vnet.resources import HOST, Change, DesiredState
from vnet.topology.graph import LabGraph
from vnet.topology.lab import Interface, Lab, LinkInfo
from vnet.topology.names import NodeEnd
from vnet.topology.routing import Forwarding, RoutedPath
from vnet.topology.segments import Tag, port_map


@dataclass
class Hop:
    link: int
    description: str
    checks: list[str] = field(default_factory=list)
    dropped: str = ""


@dataclass
class Leg:
    """One L3 hop: `sender` to `receiver` on one segment (`via`: the router's address)."""

    sender: str
    receiver: str
    via: str | None
    hops: list[Hop]
    dropped: str = ""  # the receiving router does not forward the packet on


@dataclass
class Trace:
    source: str
    target: str
    address: str
    proto: str
    legs: list[Leg]
    dropped: str = ""  # no route in the file

    @property
    def hops(self) -> list[Hop]:
        return [hop for leg in self.legs for hop in leg.hops]

    @property
    def delivered(self) -> bool:
        return not self.dropped and not any(leg.dropped for leg in self.legs) and not any(
            h.dropped for h in self.hops)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "address": self.address, "proto": self.proto,
                "delivered": self.delivered, "dropped": self.dropped,
                "legs": [{"from": leg.sender, "to": leg.receiver, "via": leg.via, "dropped": leg.dropped,
                          "hops": [vars(h) for h in leg.hops]} for leg in self.legs]}


@dataclass(frozen=True)
class Probe:
    """What is traced: a protocol, and its port for TCP/UDP."""

    proto: str = "icmp"
    port: int | None = None

    def flow(self, version: int) -> str:
        if self.proto == "icmp":
            return "icmp" if version == 4 else "icmp6"
        port = f",tp_dst={self.port}" if self.port else ""
        return f"{self.proto}{'6' if version == 6 else ''}{port}"


def _vlan_text(link: LinkInfo) -> str:
    if link.spec.vlan is not None:
        return f"access VLAN {link.spec.vlan}"
    if link.spec.trunk is not None:
        native = f", native {link.spec.native_vlan}" if link.spec.native_vlan else ""
        return "trunk " + ",".join(map(str, link.spec.trunk)) + native
    return "untagged"


def pick_address(lab: Lab, source: str, target: str) -> netaddr.IPAddress:
    """The target's address on a subnet the source shares, else its first of a family the source
    has. None at all is a property of the file (the addresses are in it), so InputError: exit 65."""
    node, _, iface = target.partition(":")
    theirs = [a for i in lab.interfaces_of(node) if not iface or i.name == iface for a in i.addresses]
    mine = [a for i in lab.interfaces_of(source) for a in i.addresses]
    for address in theirs:
        if any(address.ip in m.cidr for m in mine):
            return address.ip
    found = next((a.ip for a in theirs if any(a.version == m.version for m in mine)), None)
    if found is None:
        raise InputError(f"{target} has no address in a family {source} has: nothing to trace",
                         _no_pair_hint(lab, source, target, mine, theirs))
    return found


def _no_pair_hint(lab: Lab, source: str, target: str, mine: list[netaddr.IPNetwork],
                  theirs: list[netaddr.IPNetwork]) -> str:
    """Why the file gives the pair nothing to trace, and what to change."""
    for end, has in ((source, mine), (target, theirs)):
        if not has:
            tap = lab.topology.nodes[end.partition(":")[0]].kind == "tap"
            why = " (a tap node's guest addresses are known only from the file)" if tap else ""
            return f"the file gives {end} no address{why}: add `ip:` to its link"
    return (f"{source} has {_families(mine)} addresses, {target} {_families(theirs)}: give both an "
            "address of one family in the file")


def _families(found: list[netaddr.IPNetwork]) -> str:
    return "/".join(f"IPv{v}" for v in sorted({a.version for a in found}))


def _path_links(lab_graph: LabGraph, start: Interface, end: Interface) -> list[LinkInfo]:
    """Links from `start`'s link to `end`'s link through switches only."""
    graph: nx.Graph = nx.Graph()
    for link in lab_graph.lab.links:
        ends = [f"if:{e}" if isinstance(e, NodeEnd) else str(e) for e in link.ends]
        graph.add_edge(ends[0], ends[1], link=link)
    try:
        vertices = nx.shortest_path(graph, f"if:{start}", f"if:{end}")
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return []
    return [graph.edges[a, b]["link"] for a, b in itertools.pairwise(vertices)]


def _link_marks(lab: Lab, link: LinkInfo) -> set[str]:
    """Ownership marks of the devices a link makes (node interfaces, their host ends, switch veths)."""
    nodes = [e for e in link.ends if isinstance(e, NodeEnd)]
    marks = {mark(lab.name, e.node, e.iface) for e in nodes}
    marks |= {f"{m}:peer" for m in marks}
    if not nodes:
        ident = lab.switch_link_id(link)
        marks |= {mark(lab.name, ident, str(e)) for e in link.ends}
    return marks


def link_devices(desired: DesiredState, lab: Lab, link: LinkInfo) -> list[DeviceEnd]:
    """The kernel devices a link makes, host side and inside nodes, in the desired state."""
    marks = _link_marks(lab, link)
    ends: list[DeviceEnd] = []
    for resource in desired.resources.values():
        if isinstance(resource, VethPair):
            ends += [resource.a, resource.b]
        elif isinstance(resource, Tap | OvsInternal):
            ends.append(resource.end)
    return [e for e in ends if e.alias in marks]


def _walk(lab: Lab, start: Interface, path: list[LinkInfo]
          ) -> tuple[list[tuple[LinkInfo, str, Tag]], tuple[int, str] | None]:
    """(link, switch entered, wire tag on the link) for each switch the frame enters, and where
    (link index, why) the topology itself stops the frame, if it does."""
    universe = [None, *range(1, 4095)]
    entered: list[tuple[LinkInfo, str, Tag]] = []
    tag: Tag = None
    here = f"{start}"
    for k, link in enumerate(path):
        names = [str(e) for e in link.ends]
        nxt = names[1] if names[0] == here else names[0]
        if nxt in lab.topology.switches and k + 1 < len(path):
            entered.append((link, nxt, tag))
            switch = lab.topology.switches[nxt]
            inbound = port_map(switch, link, universe)
            if tag not in inbound:
                return entered, (link.index, f"{nxt} does not accept {_tag_text(tag)} frames here")
            internal = inbound[tag]
            outbound = port_map(switch, path[k + 1], universe)
            wires = [wire for wire, inside in outbound.items() if inside == internal]
            if not wires:
                return entered, (path[k + 1].index, f"{nxt} does not send {_tag_text(internal)} out here")
            tag = None if None in wires else wires[0]
        here = nxt
    return entered, None


def _tag_text(tag: Tag) -> str:
    return "untagged" if tag is None else f"VLAN {tag}"


@dataclass
class _Host:
    """What trace reads of the host, read once."""

    lab_graph: LabGraph
    desired: DesiredState
    host: KernelHost
    ovsdb: str
    ports: dict[int, str] | None = None

    def datapath_ports(self) -> dict[int, str]:
        if self.ports is None:
            try:
                self.ports = ovs_unixctl.datapath_ports(self.ovsdb)
            except UnavailableError:
                self.ports = {}
        return self.ports

    def links(self, namespace: str) -> dict[str, LinkMsg]:
        try:
            return self.host.links(namespace)
        except VnetError:
            return {}


def _device_checks(hop: Hop, seen: _Host, link: LinkInfo) -> None:
    lab = seen.lab_graph.lab
    for end in link_devices(seen.desired, lab, link):
        if end.netns != HOST:
            continue
        state = seen.links(HOST).get(end.name)
        shown = "missing" if state is None else ("up" if state.up else "DOWN")
        hop.checks.append(f"host device {end.name}: {shown}")
        if state is None or not state.up:
            hop.dropped = f"host device {end.name} is {'missing' if state is None else 'down'}"


def _ovs_hop(hop: Hop, seen: _Host, link: LinkInfo, switch: str, flow: str) -> None:
    port = next((r for r in seen.desired.resources.values()
                 if isinstance(r, OvsPort) and r.bridge == switch and r.link == link.index), None)
    if port is None:
        return
    try:
        result = ovs_unixctl.trace(seen.ovsdb, switch, f"in_port={port.name},{flow}")
    except UnavailableError as exc:
        hop.checks.append(f"ofproto/trace {switch}: {exc.message}")
        return
    mine = result.section(switch)
    actions = ovs_unixctl.name_ports(result.datapath_actions, seen.datapath_ports())
    hop.checks.append(f"ofproto/trace {switch} in_port={port.name}: datapath actions: {actions or '?'}")
    if mine is None:
        return
    rule = mine.dropped_by
    if rule is not None:
        hop.dropped = f"OVS bridge {switch} drops it: OpenFlow rule {rule}"
    elif any("dropping" in note for note in mine.notes):
        hop.dropped = f"OVS bridge {switch} drops it: {'; '.join(mine.notes)}"


def _drift_checks(hops: dict[int, Hop], drift: Sequence[Change]) -> None:
    """Pending changes to the OVS ports of the path: the host is not what the topology says."""
    for change in drift:
        port = change.desired or change.observed
        if isinstance(port, OvsPort) and port.link in hops:
            hops[port.link].checks.append(f"OVS port {port.name}: {change.action} pending ({change.reason})")
            hops[port.link].dropped = (f"the host differs from the topology on port {port.name} "
                                       f"({change.reason}); `vnet apply` repairs it")


def _router_check(seen: _Host, leg: Leg, router: str, version: int) -> None:
    spec = seen.lab_graph.lab.topology.nodes[router]
    if spec.kind != "netns":
        return
    try:
        forwards = seen.host.socket(netns_name(seen.lab_graph.lab.name, router)).forwarding(
            AF_INET if version == 4 else AF_INET6)
    except VnetError:
        return
    if forwards is False:
        key = "net.ipv4.ip_forward" if version == 4 else "net.ipv6.conf.all.forwarding"
        leg.dropped = f"{router} does not forward IPv{version} ({key} = 0)"


def _legs(forwarding: Forwarding, path: RoutedPath) -> list[tuple[Interface, Interface, str | None]]:
    """(sender, receiver, router address) per L3 hop: the receiver holds the gateway, or the target."""
    lab = forwarding.lab
    out = []
    for hop in path.hops:
        owner = forwarding.owner(hop.via) if hop.via is not None else None
        receiver = owner if owner is not None else lab.interfaces[path.delivered_to]
        out.append((lab.interfaces[(hop.node, hop.iface)], receiver, str(hop.via) if hop.via else None))
    return out


def trace(lab_graph: LabGraph, desired: DesiredState, host: KernelHost, ovsdb: str,
          source: str, target: str, drift: Sequence[Change] = (), probe: Probe = Probe()) -> Trace:
    lab = lab_graph.lab
    address = pick_address(lab, source, target)
    forwarding = Forwarding(lab, dict(lab_graph.segment_of))
    path = forwarding.path(source, address)
    result = Trace(source, target, str(address), probe.proto, [])
    if path is None:
        result.dropped = (f"the file gives {source} no way to {address}: no shared segment, and no route "
                          "through forwarding nodes")
        return result
    seen = _Host(lab_graph, desired, host, ovsdb)
    origin = forwarding.source_address(path, address.version)
    for k, (sender, receiver, via) in enumerate(_legs(forwarding, path)):
        leg = Leg(str(sender), str(receiver), via, [])
        if k:
            _router_check(seen, leg, sender.node, address.version)
        flow = (f"dl_src={sender.mac},dl_dst={receiver.mac},{probe.flow(address.version)},"
                f"{'ipv6_src' if address.version == 6 else 'nw_src'}={origin},"
                f"{'ipv6_dst' if address.version == 6 else 'nw_dst'}={address}")
        _trace_leg(seen, leg, sender, receiver, flow, drift)
        result.legs.append(leg)
    return result


def _trace_leg(seen: _Host, leg: Leg, sender: Interface, receiver: Interface, flow: str,
               drift: Sequence[Change]) -> None:
    lab = seen.lab_graph.lab
    links = _path_links(seen.lab_graph, sender, receiver)
    hops = {link.index: Hop(link.index, f"links[{link.index}]: {link.ends[0]} -- {link.ends[1]} "
                                        f"({_vlan_text(link)})") for link in links}
    for link in links:
        _device_checks(hops[link.index], seen, link)
    entered, stopped = _walk(lab, sender, links)
    if stopped is not None:
        hops[stopped[0]].dropped = f"by the topology: {stopped[1]}"
    for link, switch, tag in entered:
        if lab.topology.switches[switch].type == "ovs":
            vlan = f",dl_vlan={tag}" if tag is not None else ""
            _ovs_hop(hops[link.index], seen, link, switch, flow + vlan)
    _drift_checks(hops, [c for c in drift if c.key[0] == "ovs-port" and c.desired is not None])
    leg.hops = [hops[link.index] for link in links]


def mtu_culprit(lab_graph: LabGraph, desired: DesiredState, host: KernelHost, source: str,
                address: netaddr.IPAddress, size: int) -> str:
    """The first device on the way from `source` to `address` whose MTU is below `size`, said."""
    lab = lab_graph.lab
    forwarding = Forwarding(lab, dict(lab_graph.segment_of))
    path = forwarding.path(source, address)
    if path is None:
        return ""
    seen = _Host(lab_graph, desired, host, "")
    for sender, receiver, _via in _legs(forwarding, path):
        for link in _path_links(lab_graph, sender, receiver):
            for end in link_devices(desired, lab, link):
                state = seen.links(end.netns).get(end.name)
                if state is not None and state.mtu < size:
                    where = "the host" if end.netns == HOST else end.netns
                    return (f"{end.name} in {where} (links[{link.index}]: {link.ends[0]} -- {link.ends[1]}) "
                            f"has MTU {state.mtu}: a {size}-byte frame is dropped there")
    return ""

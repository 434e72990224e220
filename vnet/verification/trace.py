"""trace: the path a frame takes from one node to another, from the graph, checked on the host.

The path is the shortest one in the lab graph between the source node and the target node
(through switches; links are edges). Each hop names the interfaces, host devices, switches
and VLAN handling. Then the host is asked: host devices must exist and be up, and every OVS
hop is run through vswitchd's `ofproto/trace` (over its unixctl socket, no subprocess) with
the frame the source would send; a drop there is shown with the reason OVS gives.
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import networkx as nx
import ovs.unixctl.client

from vnet.compile import mark
from vnet.drivers.host import KernelHost
from vnet.drivers.netlink.parse import LinkMsg
from vnet.errors import VnetError
from vnet.reconcile.plan import Change
from vnet.resources import HOST, DesiredState, OvsPort, Tap, VethPair
from vnet.topology.graph import LabGraph
from vnet.topology.lab import Interface, LinkInfo
from vnet.topology.names import NodeEnd
from vnet.topology.segments import Tag, port_map


@dataclass
class Hop:
    link: int
    description: str
    checks: list[str] = field(default_factory=list)
    dropped: str = ""


@dataclass
class Trace:
    source: str
    target: str
    address: str
    hops: list[Hop]

    @property
    def delivered(self) -> bool:
        return not any(h.dropped for h in self.hops)


def _vlan_text(link: LinkInfo) -> str:
    if link.spec.vlan is not None:
        return f"access VLAN {link.spec.vlan}"
    if link.spec.trunk is not None:
        native = f", native {link.spec.native_vlan}" if link.spec.native_vlan else ""
        return "trunk " + ",".join(map(str, link.spec.trunk)) + native
    return "untagged"


def _pick(lab_graph: LabGraph, source: str, target: str) -> tuple[Interface, Interface, str]:
    """Source and target interfaces on a shared subnet (else the first with an address)."""
    lab = lab_graph.lab
    node, _, iface = target.partition(":")
    theirs = [i for i in lab.interfaces_of(node) if i.addresses and (not iface or i.name == iface)]
    mine = [i for i in lab.interfaces_of(source) if i.addresses]
    for a in mine:
        for b in theirs:
            for address in b.addresses:
                if any(address.ip in m.cidr for m in a.addresses):
                    return a, b, str(address.ip)
    if not mine or not theirs:
        raise VnetError(f"no addressed interfaces between {source} and {target}")
    return mine[0], theirs[0], str(theirs[0].addresses[0].ip)


def _path_links(lab_graph: LabGraph, start: Interface, end: Interface) -> list[LinkInfo]:
    """Links from `start`'s link to `end`'s link through switches only."""
    graph: nx.Graph = nx.Graph()
    for link in lab_graph.lab.links:
        ends = [f"if:{e}" if isinstance(e, NodeEnd) else str(e) for e in link.ends]
        graph.add_edge(ends[0], ends[1], link=link)
    try:
        vertices = nx.shortest_path(graph, f"if:{start}", f"if:{end}")
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        raise VnetError(f"no L2 path between {start} and {end}: they are on different segments",
                        "a routed pair crosses a router: trace to the router's interface first") from None
    return [graph.edges[a, b]["link"] for a, b in itertools.pairwise(vertices)]


def _vswitchd_socket(ovsdb: str) -> str | None:
    run_dir = os.path.dirname(ovsdb.removeprefix("unix:"))
    candidates = glob.glob(os.path.join(run_dir, "ovs-vswitchd*.ctl"))
    return sorted(candidates)[0] if candidates else None


def _ofproto_trace(ovsdb: str, bridge: str, flow: str) -> tuple[str, str]:
    """(datapath actions, explanation lines mentioning a drop) from vswitchd."""
    path = _vswitchd_socket(ovsdb)
    if path is None:
        return "", "ovs-vswitchd's control socket was not found next to the OVSDB socket"
    error, client = ovs.unixctl.client.UnixctlClient.create(path)
    if error:
        return "", f"cannot reach ovs-vswitchd at {path}: {os.strerror(error)}"
    try:
        error, failure, reply = client.transact("ofproto/trace", [bridge, flow])
    finally:
        client.close()
    if error or failure:
        return "", str(failure or os.strerror(error))
    lines = reply.splitlines()
    actions = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Datapath actions:")), "")
    reasons = [ln.strip() for ln in lines if "drop" in ln.lower() and not ln.startswith("Datapath")]
    return actions, "; ".join(reasons[-2:])


def _ovs_hop(hop: Hop, desired: DesiredState, link: LinkInfo, switch: str, flow: str, ovsdb: str) -> None:
    port = next((r for r in desired.resources.values()
                 if isinstance(r, OvsPort) and r.bridge == switch and r.link == link.index), None)
    if port is None:
        return
    actions, reasons = _ofproto_trace(ovsdb, switch, f"in_port={port.name},{flow}")
    hop.checks.append(f"ofproto/trace {switch} in_port={port.name}: datapath actions: {actions or '?'}")
    if actions == "drop":
        hop.dropped = f"OVS bridge {switch} drops the frame" + (f": {reasons}" if reasons else "")


def _host_devices(desired: DesiredState, lab: str, link: LinkInfo) -> list[str]:
    """Host-namespace devices the link made (veth host ends, TAPs)."""
    marks = {mark(lab, e.node, e.iface) for e in link.ends if isinstance(e, NodeEnd)}
    marks |= {f"{m}:peer" for m in marks}
    names = []
    for resource in desired.resources.values():
        ends = (resource.a, resource.b) if isinstance(resource, VethPair) else (
            (resource.end,) if isinstance(resource, Tap) else ())
        names += [e.name for e in ends if e.netns == HOST and e.alias in marks]
    return names


def _wire_out(mapping: dict[Tag, Tag], internal: Tag) -> tuple[bool, Tag]:
    """(carried, tag on the wire) for a frame of switch-internal VLAN `internal` leaving a port."""
    wires = [wire for wire, inside in mapping.items() if inside == internal]
    if not wires:
        return False, None
    return True, None if None in wires else wires[0]


def _walk(lab_graph: LabGraph, start: Interface, path: list[LinkInfo]
          ) -> tuple[list[tuple[LinkInfo, str, Tag]], tuple[int, str] | None]:
    """(link, switch entered, wire tag on the link) for each switch the frame enters, and where
    (link index, why) the topology itself stops the frame, if it does."""
    lab = lab_graph.lab
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
            carried, tag = _wire_out(port_map(switch, path[k + 1], universe), internal)
            if not carried:
                return entered, (path[k + 1].index, f"{nxt} does not send {_tag_text(internal)} out here")
        here = nxt
    return entered, None


def _tag_text(tag: Tag) -> str:
    return "untagged" if tag is None else f"VLAN {tag}"


def _device_checks(hop: Hop, desired: DesiredState, lab: str, link: LinkInfo,
                   links: dict[str, LinkMsg]) -> None:
    for name in _host_devices(desired, lab, link):
        state = links.get(name)
        shown = "missing" if state is None else ("up" if state.up else "DOWN")
        hop.checks.append(f"host device {name}: {shown}")
        if state is None or not state.up:
            hop.dropped = f"host device {name} is {'missing' if state is None else 'down'}"


def _drift_checks(hops: dict[int, Hop], drift: Sequence[Change]) -> None:
    """Pending changes to the OVS ports of the path: the host is not what the topology says."""
    for change in drift:
        port = change.desired or change.observed
        if isinstance(port, OvsPort) and port.link in hops:
            hops[port.link].checks.append(f"OVS port {port.name}: {change.action} pending ({change.reason})")
            hops[port.link].dropped = (f"the host differs from the topology on port {port.name} "
                                       f"({change.reason}); `vnet apply` repairs it")


def trace(lab_graph: LabGraph, desired: DesiredState, host: KernelHost, ovsdb: str,
          source: str, target: str, drift: Sequence[Change] = ()) -> Trace:
    start, end, address = _pick(lab_graph, source, target)
    path = _path_links(lab_graph, start, end)
    flow = (f"dl_src={start.mac},dl_dst={end.mac},dl_type=0x0800,"
            f"nw_src={start.addresses[0].ip},nw_dst={address}")
    hops = {link.index: Hop(link.index, f"links[{link.index}]: {link.ends[0]} -- {link.ends[1]} "
                                        f"({_vlan_text(link)})") for link in path}
    links = host.links(HOST)
    for link in path:
        _device_checks(hops[link.index], desired, lab_graph.lab.name, link, links)
    entered, stopped = _walk(lab_graph, start, path)
    if stopped is not None:
        hops[stopped[0]].dropped = f"by the topology: {stopped[1]}"
    for link, switch, tag in entered:
        hop = hops[link.index]
        if lab_graph.lab.topology.switches[switch].type == "ovs":
            vlan = f",dl_vlan={tag}" if tag is not None else ""
            _ovs_hop(hop, desired, link, switch, flow + vlan, ovsdb)
    _drift_checks(hops, [c for c in drift if c.key[0] == "ovs-port" and c.desired is not None])
    return Trace(source, target, address, [hops[link.index] for link in path])

"""What the kernel mechanism compiles: namespaces, Linux bridges, veth pairs, TAPs, addresses
and routes (registered in vnet/mechanisms/kernel/__init__.py).

A node interface is a veth end inside the node's namespace or a TAP on the host, as its node
kind says (`VETH_NODES`: netns; tap nodes, and vm nodes registered by the qemu mechanism, get
TAPs). A link between two veth nodes is one veth pair; any other node-to-node link joins the two
interfaces through a hidden two-port bridge (a TAP cannot be a veth peer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vnet.marks import host_name, mark, netns_name
from vnet.mechanisms.base import Builder
from vnet.mechanisms.kernel.resources import (
    PORT_FLAGS,
    Address,
    DeviceEnd,
    LinuxBridge,
    Netns,
    Route,
    Tap,
    VethPair,
)
from vnet.resources import HOST, ResourceKey
from vnet.topology.addressing import mac_address
from vnet.topology.lab import LinkInfo
from vnet.topology.model import DEFAULT_MTU, LinuxSwitch, NetnsNode, TapNode
from vnet.topology.names import NodeEnd, SwitchEnd

# Node kinds whose interfaces are veth ends inside the node's namespace (the others get TAPs).
VETH_NODES = {"netns"}


@dataclass(frozen=True)
class KernelFacts:
    """Users and groups by name, as the host has them (TAP owners): (what, name) -> id."""

    ids: dict[tuple[str, str], int] = field(default_factory=dict)


def link_mtu(link: LinkInfo) -> int:
    """The MTU of a link's devices: its `mtu`, else the kernel's default for veth and TAP, made
    explicit so that an MTU changed by hand is drift."""
    return link.spec.mtu or DEFAULT_MTU


def netns_node(out: Builder, name: str) -> None:
    node = out.lab.topology.nodes[name]
    assert isinstance(node, NetnsNode)
    out.add(Netns(netns_name(out.lab.name, name), mark(out.lab.name, name), node.forwarding, node.forwarding))


def tap_based_node(out: Builder, name: str) -> None:
    """VM and tap nodes have no host object of their own here; their TAPs come with links."""


def linux_switch(out: Builder, name: str) -> None:
    switch = out.lab.topology.switches[name]
    assert isinstance(switch, LinuxSwitch)
    out.add(LinuxBridge(name, mark(out.lab.name, name), switch.stp, switch.forward_delay,
                        switch.ageing_time, switch.vlan_filtering, switch.mtu))


def port_vlans(out: Builder, master: str | None, link: LinkInfo) -> tuple[tuple[int, bool, bool], ...] | None:
    """VLANs of the port `link` makes on Linux bridge `master` when it filters VLANs, else None."""
    switch = out.lab.topology.switches.get(master) if master else None
    if not isinstance(switch, LinuxSwitch) or not switch.vlan_filtering:
        return None
    spec = link.spec
    if spec.vlan is not None:
        return ((spec.vlan, True, True),)
    if spec.trunk is not None:
        native = spec.native_vlan
        tagged = tuple((v, False, False) for v in spec.trunk if v != native)
        return tuple(sorted(tagged + (((native, True, True),) if native is not None else ())))
    return ((1, True, True),)  # the kernel's default: untagged frames in VLAN 1


def port_flags(master: str | None) -> tuple[tuple[str, bool], ...] | None:
    """The flags vnet keeps on a port of a Linux bridge (`master`), none elsewhere."""
    return PORT_FLAGS if master is not None else None


def is_p2p_netns(out: Builder, link: LinkInfo) -> bool:
    nodes = out.lab.topology.nodes
    return all(isinstance(e, NodeEnd) and nodes[e.node].kind in VETH_NODES for e in link.ends)


def node_iface(out: Builder, end: NodeEnd, link: LinkInfo, master: str | None,
               inside_tx_checksum: bool | None = None) -> tuple[DeviceEnd, ResourceKey]:
    """Create the device of a node interface; returns its host-side end and its resource key.

    netns nodes get a veth pair (inside end in the namespace, unless the link is between two
    netns nodes: then the caller pairs the two inside ends); vm and tap nodes get a TAP."""
    lab = out.lab.name
    iface = out.lab.interfaces[(end.node, end.iface)]
    node = out.lab.topology.nodes[end.node]
    if node.kind not in VETH_NODES:
        tap = Tap(DeviceEnd(HOST, tap_name(lab, end.node, end.iface), mark(lab, end.node, end.iface),
                            mac_address(lab, end.node, f"{end.iface}:tap"), link_mtu(link), master,
                            bridge_vlans=port_vlans(out, master, link), port_flags=port_flags(master)),
                  *_tap_access(out, node))
        out.add(tap)
        return tap.end, tap.key
    inside = DeviceEnd(netns_name(lab, end.node), end.iface, mark(lab, end.node, end.iface),
                       iface.mac, link_mtu(link), tx_checksum=inside_tx_checksum)
    outside = DeviceEnd(HOST, host_name("vn", lab, end.node, end.iface),
                        mark(lab, end.node, end.iface, "peer"),
                        mac_address(lab, end.node, f"{end.iface}:peer"), link_mtu(link), master,
                        bridge_vlans=port_vlans(out, master, link), port_flags=port_flags(master))
    pair = VethPair(inside, outside)
    out.add(pair)
    out.devices[(end.node, end.iface)] = (inside.netns, inside.name, pair.key)
    return outside, pair.key


def tap_name(lab: str, node: str, iface: str) -> str:
    return host_name("vt", lab, node, iface)


def _tap_access(out: Builder, node: object) -> tuple[int | None, int | None, bool]:
    if not isinstance(node, TapNode):
        return None, None, False
    facts = out.facts.get(KernelFacts) or KernelFacts()

    def numeric(value: str | int | None, what: str) -> int | None:
        # probed (vnet/mechanisms/kernel/__init__.py); compiling offline, an unknown name is -1
        return value if value is None or isinstance(value, int) else facts.ids.get((what, value), -1)

    return numeric(node.owner, "user"), numeric(node.group, "group"), node.multi_queue


def node_to_linux(out: Builder, link: LinkInfo) -> None:
    node = next(e for e in link.ends if isinstance(e, NodeEnd))
    switch = next(e for e in link.ends if isinstance(e, SwitchEnd))
    node_iface(out, node, link, switch.name)


def node_to_node(out: Builder, link: LinkInfo) -> None:
    a, b = link.ends
    assert isinstance(a, NodeEnd) and isinstance(b, NodeEnd)
    if not is_p2p_netns(out, link):
        # A TAP cannot be a veth peer: join the two sides with a hidden two-port bridge.
        hidden = host_name("vx", out.lab.name, str(a), str(b))
        out.add(LinuxBridge(hidden, mark(out.lab.name, f"{a}~{b}", "bridge"), mtu=link.spec.mtu))
        node_iface(out, a, link, hidden)
        node_iface(out, b, link, hidden)
        return
    lab = out.lab.name
    ends = [DeviceEnd(netns_name(lab, e.node), e.iface, mark(lab, e.node, e.iface),
                      out.lab.interfaces[(e.node, e.iface)].mac, link_mtu(link)) for e in (a, b)]
    pair = VethPair(ends[0], ends[1])
    out.add(pair)
    for end, dev in ((a, pair.a), (b, pair.b)):
        out.devices[(end.node, end.iface)] = (dev.netns, dev.name, pair.key)


def switch_veth(out: Builder, link: LinkInfo, masters: tuple[str | None, str | None],
                tx_checksum: tuple[bool | None, bool | None] = (None, None)) -> VethPair:
    """A veth pair joining two switches (host namespace); `masters` are Linux bridges or None."""
    lab = out.lab.name
    ident = out.lab.switch_link_id(link)
    sides = [str(e) for e in link.ends]
    ends = [DeviceEnd(HOST, host_name("vb", lab, ident, side), mark(lab, ident, side),
                      mac_address(lab, ident, side), link_mtu(link), master, tx_checksum=csum,
                      bridge_vlans=port_vlans(out, master, link), port_flags=port_flags(master))
            for side, master, csum in zip(sides, masters, tx_checksum, strict=True)]
    pair = VethPair(ends[0], ends[1])
    out.add(pair)
    return pair


def linux_to_linux(out: Builder, link: LinkInfo) -> None:
    switch_veth(out, link, (str(link.ends[0]), str(link.ends[1])))


def addresses_and_routes(out: Builder) -> None:
    lab = out.lab
    by_node: dict[str, list[ResourceKey]] = {}
    for (owner, iface), (netns, device, creator) in sorted(out.devices.items()):
        for address in lab.interfaces[(owner, iface)].addresses:
            resource = Address(netns, device, str(address), creator)
            out.add(resource)
            by_node.setdefault(owner, []).append(resource.key)
    for name, node in lab.topology.nodes.items():
        if not isinstance(node, NetnsNode):
            continue
        for route in node.routes:
            via_v6 = ":" in route.via
            destination = route.to if route.to != "default" else ("::/0" if via_v6 else "0.0.0.0/0")
            out.add(Route(netns_name(lab.name, name), destination, route.via, route.metric,
                          tuple(by_node.get(name, ()))))

"""Open vSwitch objects of a lab: bridges and their ports (kernel devices, patch pairs).

On a userspace (netdev) bridge, the end of a veth that is not on OVS computes its checksums in
software (`tx_checksum=False`, see vnet/mechanisms/kernel/ethtool.py for why).

`attach: internal`: an OVS internal port `vi…` (14 characters, like the other host names) whose
device ovs-vswitchd creates in the host namespace; vnet moves it into the node's namespace under
the node's interface name (OvsInternal). No veth: one device, and the port comes first.
"""

from __future__ import annotations

from dataclasses import dataclass

from vnet.marks import host_name, mark, netns_name
from vnet.mechanisms.base import Builder
from vnet.mechanisms.kernel.compile import link_mtu, node_iface, switch_veth
from vnet.mechanisms.kernel.resources import DeviceEnd
from vnet.mechanisms.ovs.resources import OvsBridge, OvsInternal, OvsPort
from vnet.resources import ResourceKey
from vnet.topology.lab import Lab, LinkInfo
from vnet.topology.model import OvsSwitch
from vnet.topology.names import NodeEnd, SwitchEnd, TunnelEnd

# The one flow of a standalone bridge without a controller (vswitchd adds it; vnet adds none).
NORMAL_FLOW = "priority=0,actions=NORMAL"


@dataclass(frozen=True)
class OvsFacts:
    """Whether this host has the kernel OVS datapath (probed for switches with datapath auto)."""

    kernel_datapath: bool = False


def kernel_datapath(out: Builder) -> bool:
    facts = out.facts.get(OvsFacts)
    return facts is not None and facts.kernel_datapath


def resolve_datapath(requested: str, kernel_available: bool) -> str:
    if requested == "auto":
        return "system" if kernel_available else "netdev"
    return requested


def guest_must_checksum(lab: Lab, node: str, iface: str, kernel_datapath: bool) -> bool:
    """Whether a guest NIC on this interface's TAP must compute its own checksums.

    A TAP that is a port of a userspace (netdev) bridge hands ovs-vswitchd the guest's frames as
    the guest wrote them; with checksum offload (virtio-net `csum`, on by default) TCP and UDP
    frames carry partial checksums that the userspace datapath forwards unfixed, and receivers
    drop them (TCP stalls while ping works). The kernel datapath and Linux bridges finish them.
    """
    link = lab.links[lab.interfaces[(node, iface)].link]
    switch = next((lab.topology.switches[e.name] for e in link.ends if isinstance(e, SwitchEnd)), None)
    return isinstance(switch, OvsSwitch) and resolve_datapath(switch.datapath, kernel_datapath) == "netdev"


def ovs_switch(out: Builder, name: str) -> None:
    switch = out.lab.topology.switches[name]
    assert isinstance(switch, OvsSwitch)
    out.add(OvsBridge(name, resolve_datapath(switch.datapath, kernel_datapath(out)),
                      switch.fail_mode, switch.stp, switch.rstp, tuple(sorted(switch.other_config.items())),
                      switch.mtu, (NORMAL_FLOW,) if switch.fail_mode == "standalone" else ()))


def _bridge(out: Builder, name: str) -> OvsBridge:
    bridge = out.resources[OvsBridge.key_of(name)]
    assert isinstance(bridge, OvsBridge)
    return bridge


def _vlan_mode(link: LinkInfo) -> str | None:
    if link.spec.trunk is None:
        return None  # an access port when tagged, else OVS's default (all VLANs)
    return "native-untagged" if link.spec.native_vlan is not None else "trunk"


def add_port(out: Builder, bridge: str, name: str, link: LinkInfo, device: ResourceKey | None,
          kind: str = "", options: tuple[tuple[str, str], ...] = ()) -> None:
    spec = link.spec
    tag = spec.vlan if spec.vlan is not None else spec.native_vlan
    rate, burst = (spec.police.rate, spec.police.burst) if spec.police else (0, 0)
    out.add(OvsPort(bridge, name, kind, options, tag, tuple(spec.trunk or ()), _vlan_mode(link),
                    rate, burst, device_key=device, link=link.index))


def _internal(out: Builder, node: NodeEnd, switch: SwitchEnd, link: LinkInfo) -> None:
    """The port, then its device moved into the netns node (the checks allow netns nodes only)."""
    lab = out.lab.name
    port = host_name("vi", lab, node.node, node.iface)
    add_port(out, switch.name, port, link, None, "internal")
    end = DeviceEnd(netns_name(lab, node.node), node.iface, mark(lab, node.node, node.iface),
                    out.lab.interfaces[(node.node, node.iface)].mac, link_mtu(link))
    moved = OvsInternal(end, port)
    out.add(moved)
    out.devices[(node.node, node.iface)] = (end.netns, end.name, moved.key)


def node_to_ovs(out: Builder, link: LinkInfo) -> None:
    node = next(e for e in link.ends if isinstance(e, NodeEnd))
    switch = next(e for e in link.ends if isinstance(e, SwitchEnd))
    if link.spec.attach == "internal":
        _internal(out, node, switch, link)
        return
    userspace = _bridge(out, switch.name).datapath == "netdev"
    device, key = node_iface(out, node, link, None, False if userspace else None)
    add_port(out, switch.name, device.name, link, key)


def ovs_to_ovs(out: Builder, link: LinkInfo) -> None:
    """Patch ports when both bridges share a datapath type, else a veth pair."""
    a, b = (str(e) for e in link.ends)
    if _bridge(out, a).datapath != _bridge(out, b).datapath:
        pair = switch_veth(out, link, (None, None), (False, False))
        add_port(out, a, pair.a.name, link, pair.key)
        add_port(out, b, pair.b.name, link, pair.key)
        return
    ident = out.lab.switch_link_id(link)
    names = (host_name("vp", out.lab.name, ident, a), host_name("vp", out.lab.name, ident, b))
    add_port(out, a, names[0], link, None, "patch", (("peer", names[1]),))
    add_port(out, b, names[1], link, None, "patch", (("peer", names[0]),))


def ovs_to_tunnel(out: Builder, link: LinkInfo) -> None:
    """A VXLAN or Geneve port to a remote address (the key is the VNI, default 0)."""
    switch = next(e for e in link.ends if isinstance(e, SwitchEnd))
    tunnel = next(e for e in link.ends if isinstance(e, TunnelEnd))
    options = (("key", str(link.spec.key or 0)), ("remote_ip", tunnel.remote))
    name = host_name("vu", out.lab.name, switch.name, str(tunnel), str(link.spec.key))
    add_port(out, switch.name, name, link, None, tunnel.kind, options)


def ovs_to_linux(out: Builder, link: LinkInfo) -> None:
    """A veth pair: one end an OVS port, the other a port of the Linux bridge."""
    ends = link.ends
    ovs_first = out.lab.topology.switches[str(ends[0])].type == "ovs"
    ovs_name, linux_name = (str(ends[0]), str(ends[1])) if ovs_first else (str(ends[1]), str(ends[0]))
    userspace = _bridge(out, ovs_name).datapath == "netdev"
    masters = (None, linux_name) if ovs_first else (linux_name, None)
    csum = (None, False) if ovs_first else (False, None)
    pair = switch_veth(out, link, masters, csum if userspace else (None, None))
    device = pair.a if ovs_first else pair.b
    add_port(out, ovs_name, device.name, link, pair.key)

"""Checked lab -> DesiredState: the host objects it needs, their names and ownership marks.

Naming (design.md §4), all deterministic:
- namespace of netns node N in lab L: `vnet-L-N`; its loopback's ifalias `vnet:L:N` is the mark;
- a device's ifalias is `vnet:L:` + what it is (`h1:eth0`, `h1:eth0:peer`, `sw1~sw2#0:sw1`, …);
- host-side device names are a kind prefix and 12 hex digits of a hash of lab and identity
  (`vn…` veth end of a node, `vt…` TAP, `vb…` switch-to-switch veth, `vx…` hidden bridge,
  `vp…` OVS patch port, `vu…` OVS tunnel port): 14 characters, within IFNAMSIZ, and the same on every run;
- OVS rows carry `external_ids` vnet-lab and vnet-key.
Kinds are dispatched through registries; what is not built yet raises UnsupportedError.
"""

from __future__ import annotations

from collections.abc import Callable

from vnet.compile import kernel, ovs, sriov, vm
from vnet.compile.base import (
    Builder,
    HostFacts,
    PfFacts,
    UnsupportedError,
    VfFacts,
    VmFacts,
    dispatch,
    host_name,
    mark,
    netns_name,
)
from vnet.resources import DesiredState
from vnet.topology.lab import Lab, LinkInfo
from vnet.topology.names import NodeEnd, SwitchEnd, TunnelEnd

__all__ = ["HostFacts", "PfFacts", "UnsupportedError", "VfFacts", "VmFacts", "compile_lab", "host_name",
           "mark", "netns_name"]

NODE_COMPILERS: dict[str, Callable[[Builder, str], None]] = {
    "netns": kernel.netns_node,
    "tap": kernel.tap_based_node,
    "vm": vm.vm_node,
}

SWITCH_COMPILERS: dict[str, Callable[[Builder, str], None]] = {
    "linux": kernel.linux_switch,
    "ovs": ovs.ovs_switch,
}

# Keyed by the roles of the two ends: "node", or the switch type of a switch end.
LINK_COMPILERS: dict[frozenset[str], Callable[[Builder, LinkInfo], None]] = {
    frozenset({"node"}): kernel.node_to_node,
    frozenset({"node", "linux"}): kernel.node_to_linux,
    frozenset({"linux"}): kernel.linux_to_linux,
    frozenset({"node", "ovs"}): ovs.node_to_ovs,
    frozenset({"ovs"}): ovs.ovs_to_ovs,
    frozenset({"ovs", "linux"}): ovs.ovs_to_linux,
    frozenset({"ovs", "tunnel"}): ovs.ovs_to_tunnel,
    frozenset({"vf", "node"}): sriov.vf_to_node,
    frozenset({"vf", "ovs"}): sriov.vf_to_ovs,  # a switchdev representor (checks: OVS only)
}


def _role(lab: Lab, end: object) -> str:
    if isinstance(end, NodeEnd):
        return "node"
    if isinstance(end, SwitchEnd):
        return lab.topology.switches[end.name].type
    return "tunnel" if isinstance(end, TunnelEnd) else "vf"


def compile_lab(lab: Lab, facts: HostFacts | None = None) -> DesiredState:
    """Everything the lab needs on the host. Raises UnsupportedError for what vnet cannot build."""
    out = Builder(lab, facts or HostFacts())
    sriov.sriov_section(out)
    for name, node in lab.topology.nodes.items():
        dispatch(NODE_COMPILERS, node.kind, f"node kind `{node.kind}`")(out, name)
    for name, switch in lab.topology.switches.items():
        dispatch(SWITCH_COMPILERS, switch.type, f"switch type `{switch.type}`")(out, name)
    for link in lab.links:
        roles = frozenset(_role(lab, e) for e in link.ends)
        what = f"a link between {' and '.join(sorted(roles))} ({out.where(link)})"
        dispatch(LINK_COMPILERS, roles, what)(out, link)
    kernel.addresses_and_routes(out)
    return DesiredState(lab.name, out.resources)

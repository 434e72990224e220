"""Checks of switch-port options: native VLAN, internal attachment, policing, tunnel keys."""

from __future__ import annotations

from vnet.topology.checks.context import CheckContext
from vnet.topology.model import Link
from vnet.topology.names import Endpoint, NodeEnd, SwitchEnd, TunnelEnd
from vnet.topology.source import Path


def _ovs_ends(ctx: CheckContext, ends: tuple[Endpoint, Endpoint]) -> list[SwitchEnd]:
    return [e for e in ends if isinstance(e, SwitchEnd) and ctx.topology.switches[e.name].type == "ovs"]


def _check_native(ctx: CheckContext, link: Link, path: Path) -> None:
    if link.native_vlan is not None and link.trunk is None:
        ctx.report((*path, "native_vlan"), "native-vlan-needs-trunk", "`native_vlan` without `trunk`",
                   "a native VLAN belongs to a trunk; for an access port write `vlan:`")


def _check_node_on_trunk(ctx: CheckContext, link: Link, path: Path, ends: tuple[Endpoint, Endpoint]) -> None:
    node = next((e for e in ends if isinstance(e, NodeEnd)), None)
    on_switch = any(isinstance(e, SwitchEnd) for e in ends)
    if node is not None and on_switch and link.trunk is not None and link.native_vlan is None:
        ctx.warn((*path, "trunk"), "node-on-trunk",
                 f"{node} is on a trunk port without `native_vlan`: its untagged frames are dropped",
                 "use `vlan:` for an access port, or add `native_vlan:`; a guest that tags VLANs "
                 "itself can ignore this")


def _check_attach(ctx: CheckContext, link: Link, path: Path, ends: tuple[Endpoint, Endpoint]) -> None:
    if link.attach != "internal":
        return
    nodes = [e for e in ends if isinstance(e, NodeEnd)]
    if len(nodes) != 1 or not _ovs_ends(ctx, ends) or ctx.topology.nodes[nodes[0].node].kind != "netns":
        ctx.report((*path, "attach"), "attach-internal",
                   "`attach: internal` needs a link between a netns node and an OVS switch",
                   "an OVS internal port is moved into the node's namespace; other links use veth/TAP")


def _check_police(ctx: CheckContext, link: Link, path: Path, ends: tuple[Endpoint, Endpoint]) -> None:
    if link.police is not None and not _ovs_ends(ctx, ends):
        ctx.report((*path, "police"), "police-needs-ovs", "`police` needs a link to an OVS switch",
                   "ingress policing is set on the OVS port of the link")


def _check_key(ctx: CheckContext, link: Link, path: Path, ends: tuple[Endpoint, Endpoint]) -> None:
    if link.key is not None and not any(isinstance(e, TunnelEnd) for e in ends):
        ctx.report((*path, "key"), "key-without-tunnel", "`key` on a link that is not a tunnel",
                   "`key` is the VNI of a `vxlan:<ip>` or `geneve:<ip>` link")


def check_ports(ctx: CheckContext) -> None:
    for i, pos in ctx.links():
        link = ctx.topology.links[i]
        path: Path = ("links", pos)
        _check_native(ctx, link, path)
        ends = ctx.ends.get(pos)
        if ends is None:
            continue
        _check_attach(ctx, link, path, ends)
        _check_node_on_trunk(ctx, link, path, ends)
        _check_police(ctx, link, path, ends)
        _check_key(ctx, link, path, ends)

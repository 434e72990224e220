"""Checks of what hangs off nodes: routes, images, SR-IOV settings, unused objects."""

from __future__ import annotations

import netaddr

from vnet.topology.addressing import AddressError, parse_ip, parse_subnet
from vnet.topology.checks.context import CheckContext
from vnet.topology.model import NetnsNode, PfSpec, VmNode
from vnet.topology.source import Path


def _route_target(ctx: CheckContext, text: str, version: int, path: Path) -> netaddr.IPNetwork | None:
    if text == "default":
        return netaddr.IPNetwork("0.0.0.0/0" if version == 4 else "::/0")
    try:
        return parse_subnet(text)
    except AddressError as exc:
        ctx.report(path, "route-invalid", str(exc), "write `default` or a subnet such as 10.20.0.0/24")
        return None


def _check_node_routes(ctx: CheckContext, name: str, node: NetnsNode | VmNode,
                       connected: list[netaddr.IPNetwork]) -> None:
    seen: set[netaddr.IPNetwork] = set()
    for k, route in enumerate(node.routes):
        path: Path = ("nodes", name, "routes", k)
        try:
            via = parse_ip(route.via)
        except AddressError as exc:
            ctx.report((*path, "via"), "route-invalid", str(exc), "write the gateway's address")
            continue
        target = _route_target(ctx, route.to, via.version, (*path, "to"))
        if target is None:
            continue
        if target.version != via.version:
            ctx.report(path, "route-invalid", f"route to {target} via {via} mixes IPv4 and IPv6",
                       "use a gateway of the same family as the destination")
            continue
        if target in seen:
            ctx.report((*path, "to"), "route-duplicate", f"a second route to {target}",
                       "keep one route per destination")
        seen.add(target)
        if not any(via in address.cidr for address in connected) and not ctx.is_incomplete(name):
            ctx.warn((*path, "via"), "route-gateway-unreachable",
                     f"gateway {via} is outside every subnet of `{name}`",
                     "the kernel will refuse this route; put the gateway on a connected subnet")


def check_routes(ctx: CheckContext) -> None:
    connected: dict[str, list[netaddr.IPNetwork]] = {}  # node -> its addresses (one pass, not one per node)
    for (owner, _), addrs in ctx.addresses.items():
        connected.setdefault(owner, []).extend(addrs)
    for name, node in ctx.topology.nodes.items():
        if isinstance(node, NetnsNode | VmNode):
            _check_node_routes(ctx, name, node, connected.get(name, []))


def _check_pf(ctx: CheckContext, pf_name: str, pf: PfSpec) -> None:
    for index, vf in pf.vfs.items():
        path: Path = ("sriov", pf_name, "vfs", str(index))
        if not 0 <= index < pf.num_vfs:
            ctx.report(path, "sriov-vf-range", f"VF {index} does not exist: num_vfs is {pf.num_vfs}",
                       "VFs are numbered from 0; raise `num_vfs` or remove this entry", key=True)
        if vf.mac is not None:
            try:
                mac = netaddr.EUI(vf.mac)
                if mac.version != 48:
                    raise ValueError(vf.mac)
            except (netaddr.AddrFormatError, ValueError, TypeError):
                ctx.report((*path, "mac"), "sriov-mac", f"`{vf.mac}` is not a MAC address",
                           "write six hex octets, e.g. 02:00:00:00:00:01")
            else:
                if int(mac) >> 40 & 1:
                    ctx.report((*path, "mac"), "sriov-mac", f"`{vf.mac}` is a multicast MAC address",
                               "a VF needs a unicast MAC: the first octet's lowest bit is 0, "
                               "e.g. 02:00:00:00:00:01")
        if vf.min_tx_rate and vf.max_tx_rate and vf.min_tx_rate > vf.max_tx_rate:
            ctx.report((*path, "min_tx_rate"), "sriov-rate",
                       f"min_tx_rate {vf.min_tx_rate} exceeds max_tx_rate {vf.max_tx_rate}",
                       "the guaranteed rate cannot be above the limit")


def check_sriov(ctx: CheckContext) -> None:
    for pf_name, pf in ctx.topology.sriov.items():
        _check_pf(ctx, pf_name, pf)


def check_unused(ctx: CheckContext) -> None:
    """Nodes and switches that no link mentions are probably mistakes (a warning)."""
    used = {text.partition(":")[0] for link in ctx.topology.links for text in link.endpoints}
    for section in ("nodes", "switches"):
        for name in getattr(ctx.topology, section):
            if name not in used and not ctx.is_incomplete(name):
                ctx.warn((section, name), "unlinked", f"`{name}` is not on any link",
                         "add a link to it or remove it")

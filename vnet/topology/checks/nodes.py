"""Checks of what hangs off nodes: routes, images, SR-IOV settings, unused objects."""

from __future__ import annotations

import netaddr

from vnet.topology.addressing import AddressError, parse_ip, parse_subnet
from vnet.topology.checks.context import CheckContext
from vnet.topology.model import NetnsNode, PfSpec, VmNode
from vnet.topology.source import Path, format_path


def _route_target(ctx: CheckContext, text: str, version: int, path: Path) -> netaddr.IPNetwork | None:
    if text == "default":
        return netaddr.IPNetwork("0.0.0.0/0" if version == 4 else "::/0")
    try:
        return parse_subnet(text)
    except AddressError as exc:
        ctx.report(path, "route-invalid", str(exc), "write `default` or a subnet such as 10.20.0.0/24")
        return None


def _check_node_routes(ctx: CheckContext, name: str, node: NetnsNode | VmNode,
                       connected: list[tuple[str, netaddr.IPNetwork]]) -> None:
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
        own = next((iface for iface, address in connected if address.ip == via), None)
        if own is not None:
            ctx.report((*path, "via"), "route-via-self",
                       f"gateway {via} is `{name}`'s own address (on {name}:{own})",
                       "`via` is the next router's address on a subnet this node shares with it; "
                       "a node reaches its own subnets without a route")
            continue
        if not any(via in address.cidr for _, address in connected) and not ctx.is_incomplete(name):
            ctx.warn((*path, "via"), "route-gateway-unreachable",
                     f"gateway {via} is outside every subnet of `{name}`",
                     "the kernel will refuse this route; put the gateway on a connected subnet")


def check_routes(ctx: CheckContext) -> None:
    # node -> (iface, address) of its interfaces: one pass, not one per node
    connected: dict[str, list[tuple[str, netaddr.IPNetwork]]] = {}
    for (owner, iface), addrs in ctx.addresses.items():
        connected.setdefault(owner, []).extend((iface, address) for address in addrs)
    for name, node in ctx.topology.nodes.items():
        if isinstance(node, NetnsNode | VmNode):
            _check_node_routes(ctx, name, node, connected.get(name, []))


def _vf_mac(ctx: CheckContext, path: Path, text: str) -> int | None:
    """The VF's MAC as an integer, or None (reported) when it is not a unicast MAC address."""
    try:
        mac = netaddr.EUI(text)
        if mac.version != 48:
            raise ValueError(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        ctx.report(path, "sriov-mac", f"`{text}` is not a MAC address",
                   "write six hex octets, e.g. 02:00:00:00:00:01")
        return None
    if int(mac) >> 40 & 1:
        ctx.report(path, "sriov-mac", f"`{text}` is a multicast MAC address",
                   "a VF needs a unicast MAC: the first octet's lowest bit is 0, e.g. 02:00:00:00:00:01")
        return None
    return int(mac)


def _check_pf(ctx: CheckContext, pf_name: str, pf: PfSpec, macs: dict[int, Path]) -> None:
    """One PF's VFs; `macs` (MAC -> where first set) spans every PF of the lab."""
    for index, vf in pf.vfs.items():
        path: Path = ("sriov", pf_name, "vfs", str(index))
        if not 0 <= index < pf.num_vfs:
            ctx.report(path, "sriov-vf-range", f"VF {index} does not exist: num_vfs is {pf.num_vfs}",
                       "VFs are numbered from 0; raise `num_vfs` or remove this entry", key=True)
        mac = None if vf.mac is None else _vf_mac(ctx, (*path, "mac"), vf.mac)
        if mac is not None and mac in macs:
            first = macs[mac]
            ctx.report((*path, "mac"), "sriov-mac-duplicate",
                       f"MAC {vf.mac} is already the MAC of {format_path(first[:-1])} "
                       f"(line {ctx.loaded.source.locate(first).line})",
                       "give each VF its own MAC, or leave `mac` out (a VF given to a node then gets "
                       "the interface's derived MAC): two NICs with one MAC confuse switches' MAC "
                       "tables and the neighbours' ARP caches")
        elif mac is not None:
            macs[mac] = (*path, "mac")
        if vf.min_tx_rate and vf.max_tx_rate and vf.min_tx_rate > vf.max_tx_rate:
            ctx.report((*path, "min_tx_rate"), "sriov-rate",
                       f"min_tx_rate {vf.min_tx_rate} exceeds max_tx_rate {vf.max_tx_rate}",
                       "the guaranteed rate cannot be above the limit")


def check_sriov(ctx: CheckContext) -> None:
    macs: dict[int, Path] = {}
    for pf_name, pf in ctx.topology.sriov.items():
        _check_pf(ctx, pf_name, pf, macs)


def check_unused(ctx: CheckContext) -> None:
    """Nodes and switches that no link mentions are probably mistakes (a warning)."""
    used = {text.partition(":")[0] for link in ctx.topology.links for text in link.endpoints}
    for section in ("nodes", "switches"):
        for name in getattr(ctx.topology, section):
            if name not in used and not ctx.is_incomplete(name):
                ctx.warn((section, name), "unlinked", f"`{name}` is not on any link",
                         "add a link to it or remove it")

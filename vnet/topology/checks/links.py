"""Checks of links: endpoint syntax and references, interface reuse, VLAN semantics."""

from __future__ import annotations

import difflib

import netaddr

from vnet.topology import names as n
from vnet.topology.checks.context import CheckContext
from vnet.topology.model import Link, LinuxSwitch, OvsSwitch
from vnet.topology.names import Endpoint, MacvlanEnd, NodeEnd, SwitchEnd, TunnelEnd, VfEnd
from vnet.topology.source import Path

# Which pairs of endpoint roles make a link (order-free).
_ALLOWED_PAIRS = {
    frozenset({"node"}), frozenset({"node", "switch"}), frozenset({"switch"}),
    frozenset({"node", "vf"}), frozenset({"switch", "vf"}), frozenset({"switch", "tunnel"}),
    frozenset({"node", "macvlan"}),
}


def _close(name: str, choices: list[str],
           otherwise: str = "declare it under `nodes:` or `switches:`") -> str:
    match = difflib.get_close_matches(name, choices, n=1)
    return f"did you mean `{match[0]}`?" if match else otherwise


def _resolve_node(ctx: CheckContext, end: NodeEnd, path: Path) -> Endpoint | None:
    topo = ctx.topology
    if end.node in topo.switches:
        ctx.report(path, "switch-iface", f"`{end.node}` is a switch; switch ends take no interface",
                   f"write `{end.node}` instead of `{end}`: vnet names switch ports itself")
        return None
    if end.node not in topo.nodes:
        if not ctx.is_broken(end.node):
            ctx.report(path, "endpoint-unknown", f"`{end.node}` is not a declared node",
                       _close(end.node, [*topo.nodes, *topo.switches], "declare it under `nodes:`"))
        return None
    problem = n.ifname_problem(end.iface)
    if problem:
        ctx.report(path, problem[0], problem[1], n.IFNAME_HINT)
        return None
    return end


def _resolve_switch(ctx: CheckContext, end: SwitchEnd, path: Path) -> Endpoint | None:
    topo = ctx.topology
    if end.name in topo.nodes:
        ctx.report(path, "endpoint-needs-iface", f"`{end.name}` is a node; name its interface",
                   f"write `{end.name}:eth0` (any interface name up to 15 characters)")
        return None
    if end.name not in topo.switches:
        if not ctx.is_broken(end.name):
            ctx.report(path, "endpoint-unknown", f"`{end.name}` is not a declared switch",
                       _close(end.name, [*topo.switches, *topo.nodes],
                              "declare it under `switches:`; a node end is written `node:iface`"))
        return None
    return end


def _resolve_vf(ctx: CheckContext, end: VfEnd, path: Path) -> Endpoint | None:
    pf = ctx.topology.sriov.get(end.pf)
    if pf is None:
        if not ctx.is_broken(end.pf):
            close = difflib.get_close_matches(end.pf, list(ctx.topology.sriov), n=1)
            ctx.report(path, "sriov-unknown-pf", f"physical function `{end.pf}` is not declared",
                       f"did you mean `{close[0]}`?" if close
                       else f"add `sriov: {{{end.pf}: {{num_vfs: {end.vf + 1}}}}}`")
        return None
    if end.vf >= pf.num_vfs:
        ctx.report(path, "sriov-vf-range", f"`{end}` does not exist: `{end.pf}` has {pf.num_vfs} VFs",
                   f"VFs are numbered 0-{max(pf.num_vfs - 1, 0)}; raise `num_vfs` or pick another")
        return None
    return end


def _resolve(ctx: CheckContext, text: str, path: Path) -> Endpoint | None:
    try:
        end = n.parse_endpoint(text)
    except n.EndpointSyntaxError as exc:
        ctx.report(path, "endpoint-syntax", str(exc), exc.hint)
        return None
    name = end.node if isinstance(end, NodeEnd) else end.name if isinstance(end, SwitchEnd) else None
    if name in ctx.topology.nodes and name in ctx.topology.switches:
        return None  # the name-conflict is reported; which one is meant cannot be known
    if isinstance(end, NodeEnd):
        return _resolve_node(ctx, end, path)
    if isinstance(end, SwitchEnd):
        return _resolve_switch(ctx, end, path)
    if isinstance(end, TunnelEnd):
        return _resolve_tunnel(ctx, end, path)
    if isinstance(end, MacvlanEnd):
        return _resolve_macvlan(ctx, end, path)
    return _resolve_vf(ctx, end, path)


def _resolve_macvlan(ctx: CheckContext, end: MacvlanEnd, path: Path) -> Endpoint | None:
    problem = n.ifname_problem(end.parent) if end.parent else ("macvlan-parent", "no host device")
    if problem:
        ctx.report(path, "macvlan-parent", f"`{end}`: {problem[1]}",
                   "write `macvlan:<host device>`, e.g. `macvlan:eth0`")
        return None
    return end


def _resolve_tunnel(ctx: CheckContext, end: TunnelEnd, path: Path) -> Endpoint | None:
    try:
        netaddr.IPAddress(end.remote)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        ctx.report(path, "tunnel-remote", f"`{end.remote}` is not an IP address",
                   f"write `{end.kind}:<remote-ip>`, e.g. `{end.kind}:198.18.0.2`")
        return None
    return end


def _check_pair(ctx: CheckContext, ends: tuple[Endpoint, Endpoint], path: Path) -> bool:
    roles = frozenset(e.ROLE for e in ends)
    if roles not in _ALLOWED_PAIRS:
        ctx.report(path, "link-kind", f"a link cannot join {ends[0]} and {ends[1]}",
                   "a VF joins a node (the VF is given to it) or an OVS switch (its representor); "
                   "a tunnel joins an OVS switch; a macvlan joins a node")
        return False
    tunnel = next((e for e in ends if isinstance(e, TunnelEnd)), None)
    switch = next((e for e in ends if isinstance(e, SwitchEnd)), None)
    if tunnel is not None and switch is not None and ctx.topology.switches[switch.name].type != "ovs":
        ctx.report(path, "link-kind", f"`{tunnel}` needs an OVS switch, and {switch} is a Linux bridge",
                   "tunnel ports are OVS ports: join the tunnel to an OVS switch")
        return False
    if ends[0] == ends[1]:
        ctx.report(path, "link-loop", f"both ends of the link are `{ends[0]}`",
                   "a link joins two different interfaces or switches")
        return False
    macvlan = next((e for e in ends if isinstance(e, MacvlanEnd)), None)
    node = next((e for e in ends if isinstance(e, NodeEnd)), None)
    if macvlan is not None and node is not None and ctx.topology.nodes[node.node].kind != "netns":
        ctx.report(path, "macvlan-node-kind", f"`{macvlan}` can join only a netns node, not `{node.node}`",
                   "give the macvlan to a `netns` node (it is made in the node's namespace)")
        return False
    return _check_vf_pair(ctx, ends, path)


def _check_vf_pair(ctx: CheckContext, ends: tuple[Endpoint, Endpoint], path: Path) -> bool:
    vf = next((e for e in ends if isinstance(e, VfEnd)), None)
    if vf is None:
        return True
    other = ends[1] if ends[0] is vf else ends[0]
    if isinstance(other, NodeEnd) and ctx.topology.nodes[other.node].kind == "tap":
        ctx.report(path, "sriov-node-kind", f"a VF cannot be given to tap node `{other.node}`",
                   "give VFs to `netns` nodes (moved in) or `vm` nodes (passed through)")
        return False
    if isinstance(other, SwitchEnd):
        switch = ctx.topology.switches[other.name]
        if not isinstance(switch, OvsSwitch) or ctx.topology.sriov[vf.pf].eswitch != "switchdev":
            ctx.report(path, "sriov-representor",
                       f"`{vf}` can join switch `{other.name}` only as a switchdev representor",
                       f"set `sriov.{vf.pf}.eswitch: switchdev` and use an OVS switch")
            return False
    return True


def check_endpoints(ctx: CheckContext) -> None:
    """Resolve endpoints; each node interface and each VF role is used by one link only."""
    first_use: dict[object, int] = {}
    for i, pos in ctx.links():
        link = ctx.topology.links[i]
        path: Path = ("links", pos, "endpoints")
        resolved = [_resolve(ctx, text, (*path, j)) for j, text in enumerate(link.endpoints)]
        if resolved[0] is None or resolved[1] is None:
            continue
        ends = (resolved[0], resolved[1])
        if not _check_pair(ctx, ends, path):
            continue
        if all(_claim(ctx, first_use, end, ends, (*path, j), pos) for j, end in enumerate(ends)):
            ctx.ends[pos] = ends


def _claim(ctx: CheckContext, first_use: dict[object, int], end: Endpoint,
           ends: tuple[Endpoint, Endpoint], path: Path, pos: int) -> bool:
    """Record the use of a node interface or VF role; report a second use."""
    if isinstance(end, SwitchEnd | TunnelEnd | MacvlanEnd):  # many links may use one host device
        return True
    if isinstance(end, VfEnd):
        role = "representor" if any(isinstance(e, SwitchEnd) for e in ends) else "node"
        key: object = (end, role)
        what = f"{end} ({'its representor' if role == 'representor' else 'given to a node'})"
    else:
        key, what = (end.node, end.iface), str(end)
    if key in first_use:
        ctx.report(path, "iface-reused", f"`{what}` is already used by links[{first_use[key]}]",
                   "each node interface belongs to one link; use another interface name")
        return False
    first_use[key] = pos
    if isinstance(end, NodeEnd):
        ctx.interface_links[(end.node, end.iface)] = pos
    return True


def _vlan_aware(ctx: CheckContext, end: Endpoint) -> bool:
    if not isinstance(end, SwitchEnd):
        return False
    switch = ctx.topology.switches[end.name]
    return not isinstance(switch, LinuxSwitch) or switch.vlan_filtering


def check_vlans(ctx: CheckContext) -> None:
    for i, pos in ctx.links():
        link = ctx.topology.links[i]
        if link.vlan is not None and link.trunk is not None:
            ctx.report(("links", pos, "trunk"), "vlan-and-trunk", "a link has `vlan` or `trunk`, not both",
                       "`vlan: N` makes access ports, `trunk: [...]` makes tagged ports")
        if link.trunk is not None:
            _check_trunk(ctx, link, pos)
        ends = ctx.ends.get(pos)
        if ends is None or (link.vlan is None and link.trunk is None):
            continue
        attr = "vlan" if link.vlan is not None else "trunk"
        if not any(isinstance(e, SwitchEnd) for e in ends):
            hint = ("set the VF's VLAN under `sriov.<pf>.vfs.<n>.vlan`"
                    if any(isinstance(e, VfEnd) for e in ends)
                    else "VLANs are properties of switch ports; this link has no switch end")
            ctx.report(("links", pos, attr), "vlan-no-switch", f"`{attr}` on a link with no switch", hint)
        elif not any(_vlan_aware(ctx, e) for e in ends):
            names = [str(e) for e in ends if isinstance(e, SwitchEnd)]
            ctx.report(("links", pos, attr), "vlan-unaware-bridge",
                       f"`{attr}` needs a VLAN-aware switch, and {' and '.join(names)} is not",
                       "set `vlan_filtering: true` on the Linux bridge, or remove the VLAN: "
                       "a VLAN-unaware bridge is one untagged segment")


def _check_trunk(ctx: CheckContext, link: Link, pos: int) -> None:
    trunk = link.trunk or ()
    if not trunk:
        ctx.report(("links", pos, "trunk"), "trunk-empty", "`trunk` lists no VLAN",
                   "list the VLANs the trunk carries, e.g. `trunk: [10, 20]`")
    seen: set[int] = set()
    for k, vlan in enumerate(trunk):
        if vlan in seen:
            ctx.report(("links", pos, "trunk", k), "trunk-duplicate", f"VLAN {vlan} is listed twice",
                       "list each VLAN once")
        seen.add(vlan)

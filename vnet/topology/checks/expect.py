"""Checks of the `expect` list: sources and targets exist, can probe / be probed, no conflicts."""

from __future__ import annotations

from vnet.topology.checks.context import CheckContext
from vnet.topology.model import DEFAULT_MTU, Expectation
from vnet.topology.source import Path


def _has_addresses(ctx: CheckContext, node: str, iface: str | None) -> bool:
    return any(addrs for (owner, name), addrs in ctx.addresses.items()
               if owner == node and (iface is None or name == iface))


def _check_source(ctx: CheckContext, entry: Expectation, path: Path) -> bool:
    topo = ctx.topology
    if entry.source not in topo.nodes:
        if not ctx.is_broken(entry.source):
            hint = ("switches have no address; name a node" if entry.source in topo.switches
                    else "name a node declared under `nodes:`")
            ctx.report((*path, "from"), "expect-unknown-node", f"`{entry.source}` is not a node", hint)
        return False
    if topo.nodes[entry.source].kind == "tap":
        ctx.report((*path, "from"), "expect-source-kind",
                   f"`{entry.source}` is a tap node: vnet cannot run a probe inside it",
                   "probe from a netns or vm node; a tap node can be a target")
        return False
    if not _has_addresses(ctx, entry.source, None) and not ctx.is_incomplete(entry.source):
        ctx.report((*path, "from"), "expect-no-address", f"`{entry.source}` has no address to probe from",
                   "give one of its links `ip:` or `network:`")
        return False
    return True


def _check_target(ctx: CheckContext, entry: Expectation, path: Path) -> bool:
    node, _, iface = entry.to.partition(":")
    if node not in ctx.topology.nodes:
        if not ctx.is_broken(node):
            ctx.report((*path, "to"), "expect-unknown-node", f"`{node}` is not a node",
                       "name a node declared under `nodes:`, or `node:iface`")
        return False
    if ctx.is_incomplete(node):
        return False
    if iface and (node, iface) not in ctx.addresses:
        ctx.report((*path, "to"), "expect-unknown-iface", f"`{node}` has no interface `{iface}`",
                   f"interfaces of {node}: {', '.join(sorted(n for o, n in ctx.addresses if o == node))}")
        return False
    if not _has_addresses(ctx, node, iface or None):
        ctx.report((*path, "to"), "expect-no-address", f"`{entry.to}` has no address to probe",
                   "give its link `ip:` or `network:`")
        return False
    return True


def _check_protocol(ctx: CheckContext, entry: Expectation, path: Path) -> bool:
    if entry.port is not None and entry.proto == "icmp":
        ctx.report((*path, "port"), "expect-port-icmp", "`port` needs `proto: tcp` or `proto: udp`",
                   "set `proto: tcp` (or `udp`), or remove `port`: ICMP has no ports")
        return False
    if entry.mtu is not None and entry.proto != "icmp":
        ctx.report((*path, "mtu"), "expect-mtu-proto",
                   f"`mtu` is an ICMP probe, and this entry is {entry.proto}",
                   "an MTU row is a don't-fragment ICMP echo of `mtu` bytes: remove `proto` or `mtu`")
        return False
    return True


def _check_mtu(ctx: CheckContext, entry: Expectation, path: Path) -> None:
    """A DF probe larger than the source interface it leaves by cannot be sent: say so now."""
    if entry.mtu is None or not entry.reach:
        return
    node, _, iface = entry.to.partition(":")
    theirs = [a for (owner, name), addrs in ctx.addresses.items()
              if owner == node and (not iface or name == iface) for a in addrs]
    for (owner, name), mine in ctx.addresses.items():
        shared = any(b.ip in a.cidr for a in mine for b in theirs if a.version == b.version)
        if owner != entry.source or not shared:
            continue
        mtu = ctx.topology.links[ctx.link_slot(ctx.interface_links[(owner, name)])].mtu or DEFAULT_MTU
        if entry.mtu > mtu:
            ctx.warn((*path, "mtu"), "expect-mtu-exceeds",
                     f"a {entry.mtu}-byte frame cannot leave {owner}:{name} (MTU {mtu}) unfragmented",
                     f"set `mtu: {entry.mtu}` on {owner}:{name}'s link, or expect `reach: false`")
        return


def check_expect(ctx: CheckContext) -> None:
    seen: dict[tuple[object, ...], tuple[bool, int]] = {}
    for entry, pos in zip(ctx.topology.expect or (), ctx.loaded.expect_index, strict=True):
        path: Path = ("expect", pos)
        source_ok = _check_source(ctx, entry, path)
        if not (_check_target(ctx, entry, path) and source_ok and _check_protocol(ctx, entry, path)):
            continue
        _check_mtu(ctx, entry, path)
        if entry.to.partition(":")[0] == entry.source:
            ctx.report(path, "expect-self", f"`{entry.source}` probes itself",
                       "expectations are between two different nodes")
            continue
        pair = (entry.source, entry.to, entry.proto, entry.port, entry.mtu)
        if pair in seen:
            reach, first = seen[pair]
            if reach != entry.reach:
                ctx.report(path, "expect-conflict", f"contradicts expect[{first}] for the same pair",
                           "keep one expectation per pair")
            else:
                ctx.warn(path, "expect-duplicate", f"repeats expect[{first}]", "remove one")
            continue
        seen[pair] = (entry.reach, pos)

"""Checks of addressing: pools, static and pool addresses, duplicates, overlaps, routes."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

import netaddr

from vnet.topology.addressing import (
    AddressError,
    Pool,
    parse_interface_address,
    parse_ip,
    parse_subnet,
    special_subnet,
    special_text,
    special_use,
)
from vnet.topology.checks.context import CheckContext
from vnet.topology.model import Link
from vnet.topology.names import NodeEnd
from vnet.topology.source import Path, format_path


@dataclass
class _Ledger:
    """Addresses in use so far (file order), and where each was first written or assigned."""

    used: dict[tuple[int, int], Path] = field(default_factory=dict)
    pools: dict[str, Pool] = field(default_factory=dict)

    def key(self, address: netaddr.IPNetwork) -> tuple[int, int]:
        return (address.version, int(address.ip))


def _load_pools(ctx: CheckContext, ledger: _Ledger) -> None:
    placed: list[tuple[str, netaddr.IPNetwork]] = []
    for name, network in ctx.topology.networks.items():
        try:
            subnet = parse_subnet(network.subnet)
        except AddressError as exc:
            ctx.report(("networks", name, "subnet"), "cidr-invalid", str(exc),
                       "write the subnet in CIDR form, e.g. `10.10.0.0/24` or `fd00:10::/64`")
            ctx.loaded.broken.add(name)
            continue
        use = special_subnet(subnet)
        if use is not None:
            ctx.report(("networks", name, "subnet"), use.code,
                       f"pool `{name}` ({subnet}) holds only {use.kind} addresses",
                       use.hint)
            ctx.loaded.broken.add(name)  # its links are not reported again, one by one
            continue
        gateway = _pool_gateway(ctx, name, network.gateway, subnet)
        for other, other_subnet in placed:
            if other_subnet.version == subnet.version and (
                    subnet in other_subnet or other_subnet in subnet):
                ctx.report(("networks", name, "subnet"), "pool-overlap",
                           f"{subnet} overlaps pool `{other}` ({other_subnet})",
                           "pools would hand out the same addresses; use one pool or split the range")
        placed.append((name, subnet))
        ledger.pools[name] = Pool(name, subnet, gateway)


def _pool_gateway(ctx: CheckContext, name: str, text: str | None,
                  subnet: netaddr.IPNetwork) -> netaddr.IPAddress | None:
    if text is None:
        return None
    path = ("networks", name, "gateway")
    try:
        gateway = parse_ip(text)
    except AddressError as exc:
        ctx.report(path, "cidr-invalid", str(exc), "write a plain address, e.g. `10.10.0.254`")
        return None
    if gateway not in subnet:
        ctx.report(path, "address-outside-pool", f"gateway {gateway} is outside the pool {subnet}",
                   f"pick an address inside {subnet}")
        return None
    reserved = _reserved_in(subnet, gateway)
    if reserved is not None:
        ctx.report(path, "pool-gateway-not-host",
                   f"gateway {gateway} is the {reserved} address of the pool {subnet}, not a host address",
                   f"a router's address is a host address, e.g. {_last_host(subnet)} (the pool "
                   "hands out the others); no interface can have the network or broadcast address")
        return None
    return gateway


def _reserved_in(subnet: netaddr.IPNetwork, address: netaddr.IPAddress) -> str | None:
    """"network" or "broadcast" when `address` is one of them in `subnet` (IPv6: the network
    address is the subnet-router anycast address, RFC 4291 2.6.1; /31, /32, /127, /128 have none)."""
    if subnet.size <= 2:
        return None
    if address == subnet.network:
        return "network"
    if subnet.version == 4 and address == subnet.broadcast:
        return "broadcast"
    return None


def _last_host(subnet: netaddr.IPNetwork) -> netaddr.IPAddress:
    return netaddr.IPAddress(subnet.last - (1 if subnet.version == 4 else 0), subnet.version)


def _static_entries(ctx: CheckContext, link: Link, pos: int,
                    node_ends: list[NodeEnd]) -> list[list[tuple[str, Path]]] | None:
    """Split `ip:` into one list of (text, path) per node endpoint; None if the shape is wrong."""
    base: Path = ("links", pos, "ip")
    single = isinstance(link.ip, str)
    ip = (link.ip,) if isinstance(link.ip, str) else (link.ip or ())
    if len(node_ends) == 1:
        if any(not isinstance(entry, str) for entry in ip):
            ctx.report(base, "ip-count", "nested address lists need a node-to-node link",
                       "list the interface's addresses flat: `ip: [10.0.0.1/24, fd00::1/64]`")
            return None
        return [[(str(entry), base if single else (*base, k)) for k, entry in enumerate(ip)]]
    if len(ip) != len(node_ends):
        ctx.report(base, "ip-count",
                   f"{len(ip)} `ip` {'entry' if len(ip) == 1 else 'entries'} for {len(node_ends)} node ends",
                   "a node-to-node link takes one entry per node, in endpoint order: "
                   "`ip: [10.0.0.1/30, 10.0.0.2/30]`")
        return None
    out: list[list[tuple[str, Path]]] = []
    for k, entry in enumerate(ip):
        if isinstance(entry, str):
            out.append([(entry, (*base, k))])
        else:
            out.append([(text, (*base, k, m)) for m, text in enumerate(entry)])
    return out


def _take_static(ctx: CheckContext, ledger: _Ledger, text: str,
                 path: Path) -> netaddr.IPNetwork | None:
    special = special_text(text)  # first: `0.0.0.0/24` is unspecified before it is a network address
    if special is not None:
        address, use = special
        ctx.report(path, use.code, f"{address} is {use.what} address; no interface can have it", use.hint)
        return None
    try:
        address = parse_interface_address(text)
    except AddressError as exc:
        ctx.report(path, "cidr-invalid", str(exc),
                   "write the interface address with its prefix, e.g. `10.0.0.1/24`")
        return None
    return _record(ctx, ledger, address, path)


def _record(ctx: CheckContext, ledger: _Ledger, address: netaddr.IPNetwork,
            path: Path) -> netaddr.IPNetwork | None:
    key = ledger.key(address)
    if key in ledger.used:
        first = ledger.used[key]
        line = ctx.loaded.source.locate(first).line
        ctx.report(path, "address-duplicate",
                   f"{address.ip} is already used by {format_path(first)} (line {line})",
                   "every address in a lab is unique; pick another")
        return None
    ledger.used[key] = path
    return address


def _pool_entries(ctx: CheckContext, ledger: _Ledger, link: Link, pos: int,
                  node_ends: list[NodeEnd]) -> list[list[netaddr.IPNetwork]]:
    names = (link.network,) if isinstance(link.network, str) else (link.network or ())
    out: list[list[netaddr.IPNetwork]] = [[] for _ in node_ends]
    for k, name in enumerate(names):
        path: Path = ("links", pos, "network") if isinstance(link.network, str) else (
            "links", pos, "network", k)
        pool = ledger.pools.get(name)
        if pool is None:
            if name not in ctx.topology.networks and not ctx.is_broken(name):  # broken: reported
                close = difflib.get_close_matches(name, list(ctx.topology.networks), n=1)
                ctx.report(path, "pool-unknown", f"`{name}` is not a pool in `networks:`",
                           f"did you mean `{close[0]}`?" if close else "declare it under `networks:`")
            continue
        for j in range(len(node_ends)):
            address = pool.take(ledger.used)
            if address is None:
                ctx.report(path, "pool-exhausted", f"pool `{name}` ({pool.subnet}) has no free address",
                           "use a larger subnet or another pool")
                break
            ledger.used[ledger.key(address)] = path
            use = special_use(address.ip)  # a pool such as ::/64 hands out ::1 first
            if use is not None:
                ctx.report(path, use.code, f"pool `{name}` ({pool.subnet}) hands out {address.ip}, "
                           f"{use.what} address", use.hint)
                continue
            out[j].append(address)
    return out


def check_addresses(ctx: CheckContext) -> None:
    ledger = _Ledger()
    _load_pools(ctx, ledger)
    for i, pos in ctx.links():
        link = ctx.topology.links[i]
        ends = ctx.ends.get(pos)
        node_ends = [e for e in ends or () if isinstance(e, NodeEnd)]
        for end in node_ends:
            ctx.addresses.setdefault((end.node, end.iface), [])
        if link.ip is None and link.network is None:
            continue
        attr = "ip" if link.ip is not None else "network"
        if link.ip is not None and link.network is not None:
            ctx.report(("links", pos, "network"), "ip-and-network", "a link has `ip` or `network`, not both",
                       "write the addresses (`ip:`) or name a pool (`network:`)")
            continue
        if ends is None:
            ctx.loaded.incomplete.update(e.partition(":")[0] for e in link.endpoints)
            continue
        if not node_ends:
            ctx.report(("links", pos, attr), "address-no-node", f"`{attr}` on a link with no node end",
                       "addresses belong to node interfaces; switch ports have none")
            continue
        errors_before = len(ctx.diagnostics)
        per_end = _addresses_for(ctx, ledger, link, pos, node_ends)
        if len(ctx.diagnostics) > errors_before:
            ctx.loaded.incomplete.update(end.node for end in node_ends)
        for end, addresses in zip(node_ends, per_end, strict=True):
            ctx.addresses[(end.node, end.iface)].extend(addresses)
    _check_overlaps(ctx)


def _addresses_for(ctx: CheckContext, ledger: _Ledger, link: Link, pos: int,
                   node_ends: list[NodeEnd]) -> list[list[netaddr.IPNetwork]]:
    if link.network is not None:
        return _pool_entries(ctx, ledger, link, pos, node_ends)
    entries = _static_entries(ctx, link, pos, node_ends)
    if entries is None:
        return [[] for _ in node_ends]
    out: list[list[netaddr.IPNetwork]] = []
    for texts in entries:
        taken = [_take_static(ctx, ledger, text, path) for text, path in texts]
        out.append([a for a in taken if a is not None])
    return out


def _check_overlaps(ctx: CheckContext) -> None:
    """Two interfaces of one node on overlapping subnets make its routing ambiguous."""
    per_node: dict[str, list[tuple[str, netaddr.IPNetwork]]] = {}
    for (node, iface), addresses in ctx.addresses.items():
        for address in addresses:
            for other_iface, other in per_node.get(node, []):
                # `a.ip in b.cidr` as integers: first/last bound the subnet, value is the host address
                if other_iface != iface and other.version == address.version and (
                        other.first <= address.value <= other.last
                        or address.first <= other.value <= address.last):
                    pos = ctx.interface_links[(node, iface)]
                    attr = "ip" if ("links", pos, "ip") in ctx.loaded.source.values else "network"
                    ctx.report(("links", pos, attr), "address-overlap",
                               f"{node}:{iface} {address} overlaps {node}:{other_iface} {other}",
                               "give each interface of a node its own subnet")
            per_node.setdefault(node, []).append((iface, address))

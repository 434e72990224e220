"""Semantic checks: every problem of a file at once, each with file, line and attribute path."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import netaddr

from vnet.errors import Diagnostic, Severity, TopologyError
from vnet.topology.addressing import mac_address
from vnet.topology.checks.addresses import check_addresses
from vnet.topology.checks.context import CheckContext
from vnet.topology.checks.expect import check_expect
from vnet.topology.checks.images import check_images
from vnet.topology.checks.links import check_endpoints, check_vlans
from vnet.topology.checks.naming import check_names
from vnet.topology.checks.nodes import check_routes, check_sriov, check_unused
from vnet.topology.checks.ports import check_ports
from vnet.topology.checks.segments import check_loops, mtu_warnings
from vnet.topology.lab import Interface, Lab, LinkInfo
from vnet.topology.loader import Loaded, TooManyErrors, too_many_errors
from vnet.topology.names import VfEnd

# In order: later checks use what earlier ones resolved (endpoints -> addresses -> routes/expect).
CHECKS: tuple[Callable[[CheckContext], None], ...] = (
    check_names,
    check_endpoints,
    check_vlans,
    check_ports,
    check_loops,
    check_addresses,
    check_routes,
    check_images,
    check_sriov,
    check_expect,
    check_unused,
)


def run_checks(loaded: Loaded) -> tuple[Lab | None, list[Diagnostic]]:
    """All diagnostics of a loaded document, and the Lab when there is no error."""
    diagnostics = list(loaded.diagnostics)
    if loaded.topology is None:
        return None, diagnostics
    ctx = CheckContext(loaded, loaded.topology, errors=loaded.errors)
    try:
        for check in CHECKS:
            check(ctx)
    except TooManyErrors:
        ctx.diagnostics.append(too_many_errors(ctx.diagnostics[-1]))
    diagnostics.extend(ctx.diagnostics)
    if any(d.is_error for d in diagnostics):
        return None, diagnostics
    lab = _build_lab(ctx, diagnostics)
    late = mtu_warnings(lab)  # needs the lab's segments
    if late:
        diagnostics.extend(late)
        lab = dataclasses.replace(lab, warnings=(*lab.warnings, *late))
    return lab, diagnostics


def check(loaded: Loaded) -> Lab:
    """The Lab, or TopologyError carrying every diagnostic (errors and warnings)."""
    lab, diagnostics = run_checks(loaded)
    if lab is None:
        raise TopologyError(diagnostics)
    return lab


def _build_lab(ctx: CheckContext, diagnostics: list[Diagnostic]) -> Lab:
    topo = ctx.topology
    links = tuple(LinkInfo(pos, topo.links[i], ctx.ends[pos]) for i, pos in ctx.links())
    interfaces = {
        key: Interface(key[0], key[1], pos, _interface_mac(ctx, key, pos),
                       tuple(ctx.addresses.get(key, ())), topo.links[pos].mtu)
        for key, pos in ctx.interface_links.items()
    }
    warnings = tuple(d for d in diagnostics if d.severity is Severity.WARNING)
    return Lab(ctx.loaded.file, topo, ctx.loaded.source, links, interfaces, warnings)


def _interface_mac(ctx: CheckContext, key: tuple[str, str], pos: int) -> str:
    """The derived MAC, unless the interface is a VF whose `mac:` the topology sets (that one wins)."""
    for end in ctx.ends.get(pos, ()):
        if isinstance(end, VfEnd):
            vf = ctx.topology.sriov[end.pf].vfs.get(end.vf)
            if vf is not None and vf.mac is not None:
                return str(netaddr.EUI(vf.mac, dialect=netaddr.mac_unix_expanded))
    return mac_address(ctx.topology.name, *key)

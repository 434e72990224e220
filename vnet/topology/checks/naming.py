"""Checks of names: the lab, nodes, switches, pools and SR-IOV PFs."""

from __future__ import annotations

from vnet.topology import names as n
from vnet.topology.checks.context import CheckContext


def check_names(ctx: CheckContext) -> None:
    topo = ctx.topology
    if not ctx.loaded.name_invalid and not n.LAB_NAME.match(topo.name):
        ctx.report(("name",), "lab-name", f"`{topo.name}` is not a valid lab name", n.LAB_NAME_HINT)
    for name in topo.nodes:
        if not n.NODE_NAME.match(name):
            ctx.report(("nodes", name), "node-name", f"`{name}` is not a valid node name",
                       n.NODE_NAME_HINT, key=True)
    for name in topo.switches:
        if len(name) > n.IFNAMSIZ or not n.SWITCH_NAME.match(name):
            ctx.report(("switches", name), "switch-name", f"`{name}` is not a valid bridge name",
                       n.SWITCH_NAME_HINT, key=True)
    for name in topo.networks:
        if not n.POOL_NAME.match(name):
            ctx.report(("networks", name), "pool-name", f"`{name}` is not a valid pool name",
                       n.NODE_NAME_HINT, key=True)
    for pf in topo.sriov:
        problem = n.ifname_problem(pf)
        if problem:
            ctx.report(("sriov", pf), problem[0], problem[1], n.IFNAME_HINT, key=True)
    _check_shared_namespace(ctx)


def _check_shared_namespace(ctx: CheckContext) -> None:
    """Nodes and switches share one namespace; some words are reserved for endpoint syntax."""
    topo = ctx.topology
    for name in sorted(set(topo.nodes) & set(topo.switches)):
        ctx.report(("switches", name), "name-conflict",
                   f"`{name}` names both a node and a switch",
                   "node and switch names share one namespace; rename one of them", key=True)
    for section in ("nodes", "switches"):
        for name in getattr(topo, section):
            if name in n.RESERVED_NAMES:
                ctx.report((section, name), "name-reserved", f"`{name}` is a reserved word",
                           "`sriov:`, `vxlan:` and `geneve:` start special endpoints; choose another name",
                           key=True)

"""Checks of the lab's L2 structure: loops between switches, and mixed MTUs on one segment.

A loop of switches without spanning tree is a broadcast storm: the first ARP request circles
forever and takes the lab down, so it is an error, and the hint turns spanning tree on.

A segment whose members have different MTUs loses every frame larger than the smallest one on
the way to that member (an L2 hop drops it silently, there is no ICMP). It validates, with a
warning: `vnet verify` proves each pair with the largest frame both of its ends allow. That
check needs the checked lab's segments, so it runs on the Lab (`mtu_warnings`).
"""

from __future__ import annotations

from vnet.errors import Diagnostic, Severity
from vnet.topology.checks.context import CheckContext
from vnet.topology.lab import Lab, LinkInfo
from vnet.topology.model import DEFAULT_MTU, OvsSwitch, SwitchBase
from vnet.topology.segments import L2Loop, compute_segments, l2_loops
from vnet.topology.source import Path, format_path


def runs_spanning_tree(switch: SwitchBase) -> bool:
    return switch.stp or (isinstance(switch, OvsSwitch) and switch.rstp)


def _names(items: list[str], limit: int = 6) -> str:
    """`a, b and c`; past `limit` items the rest are counted (a loop of 20 switches)."""
    if len(items) > limit:
        items = [*items[:limit - 1], f"{len(items) - limit + 1} more"]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _loop_message(loop: L2Loop, unprotected: list[str]) -> str:
    links = _names([f"links[{k}]" for k in loop.links])
    where = f" in VLAN {_names([str(v) for v in loop.vlans])}" if loop.vlans else ""
    if len(loop.links) == 2 and len(loop.switches) == 2:
        shape = f"{links} both join {loop.switches[0]} and {loop.switches[1]}: a loop{where}"
    else:
        shape = f"{links} join {_names(list(loop.switches))} in a loop{where}"
    return f"{shape}, and {_names(unprotected)} {'runs' if len(unprotected) == 1 else 'run'} no spanning tree"


def check_loops(ctx: CheckContext) -> None:
    """An L2 loop is an error unless every switch on it runs spanning tree (STP or RSTP)."""
    switches = ctx.topology.switches
    links = [LinkInfo(pos, ctx.topology.links[i], ctx.ends[pos]) for i, pos in ctx.links() if pos in ctx.ends]
    for loop in l2_loops(switches, links):
        unprotected = [name for name in loop.switches if not runs_spanning_tree(switches[name])]
        if not unprotected:
            continue
        ctx.report(("links", loop.links[-1]), "l2-loop", _loop_message(loop, unprotected),
                   _loop_hint([switches[name] for name in unprotected], unprotected))


def _loop_hint(specs: list[SwitchBase], names: list[str]) -> str:
    notes = []
    if any(isinstance(spec, OvsSwitch) for spec in specs):
        notes.append("on OVS `rstp: true` works too")
    if any(not isinstance(spec, OvsSwitch) for spec in specs):
        notes.append("a Linux bridge then forwards after 2 x `forward_delay`, 15 s unless set lower")
    return ("every broadcast (ARP, IPv6 ND) would circle the loop forever, a broadcast storm: "
            f"set `stp: true` on {_names(names)} ({'; '.join(notes)}), or remove one of these links")


def _switch_veths(lab: Lab) -> list[tuple[set[str], str, int]]:
    """(its two switches, name, MTU) of each veth joining two switches (OVS patch ports have no MTU)."""
    out = []
    for link in lab.links:
        names = [str(e) for e in link.ends]
        if all(n in lab.topology.switches for n in names) and \
                {lab.topology.switches[n].type for n in names} != {"ovs"}:
            out.append((set(names), f"{names[0]}--{names[1]}", link.spec.mtu or DEFAULT_MTU))
    return out


def mtu_warnings(lab: Lab) -> list[Diagnostic]:
    found = []
    veths = _switch_veths(lab)  # once, not once per segment: a large lab has hundreds of segments
    for segment in compute_segments(lab):
        members = [lab.interfaces[key] for key in segment.interfaces]
        mtus = {str(i): i.mtu or DEFAULT_MTU for i in members}
        # A switch's own MTU is its local port's; between its ports frames are limited by the
        # ports' devices: the members' and the veths joining switches.
        switches = {name for name, _tag in segment.domains}
        for ends, name, mtu in veths:
            if ends <= switches:
                mtus[name] = mtu
        if len(set(mtus.values())) < 2:
            continue
        smallest = min(members, key=lambda i: (i.mtu or DEFAULT_MTU, str(i)))
        low = smallest.mtu or DEFAULT_MTU
        path: Path = ("links", smallest.link, "mtu") if smallest.mtu is not None else ("links", smallest.link)
        mark = lab.source.locate(path)
        shown = ", ".join(f"{what} {mtu}" for what, mtu in sorted(mtus.items()))
        found.append(Diagnostic(
            lab.file, mark.line, mark.column, "mtu-mismatch",
            f"segment {segment.name} mixes MTUs ({shown}): frames larger than {low} are lost on the way "
            f"to {smallest}", format_path(path),
            "give every link of the segment the same `mtu` (set it once in `defaults:`)", Severity.WARNING))
    return found

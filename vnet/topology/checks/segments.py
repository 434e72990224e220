"""Checks that need the lab's L2 segments (run on the checked lab): mixed MTUs on one segment.

A segment whose members have different MTUs loses every frame larger than the smallest one on
the way to that member (an L2 hop drops it silently, there is no ICMP). It validates, with a
warning: `vnet verify` proves each pair with the largest frame both of its ends allow.
"""

from __future__ import annotations

from vnet.errors import Diagnostic, Severity
from vnet.topology.lab import Lab
from vnet.topology.model import DEFAULT_MTU
from vnet.topology.segments import compute_segments
from vnet.topology.source import Path, format_path


def mtu_warnings(lab: Lab) -> list[Diagnostic]:
    found = []
    for segment in compute_segments(lab):
        members = [lab.interfaces[key] for key in segment.interfaces]
        mtus = {str(i): i.mtu or DEFAULT_MTU for i in members}
        # A switch's own MTU is its local port's; between its ports frames are limited by the
        # ports' devices: the members' and the veths joining switches (OVS patch ports have none).
        switches = {name for name, _tag in segment.domains}
        for link in lab.links:
            names = [str(e) for e in link.ends]
            types = {lab.topology.switches[n].type for n in names if n in lab.topology.switches}
            if set(names) <= switches and types != {"ovs"}:
                mtus[f"{names[0]}--{names[1]}"] = link.spec.mtu or DEFAULT_MTU
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

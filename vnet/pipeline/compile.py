"""Checked lab -> DesiredState: the host objects it needs, with their names and ownership marks
(vnet/marks.py). Pure: what it needs to know about the host comes in `facts` (the probe stage).

The mechanisms' contributions are looked up in registries (vnet/mechanisms/base.py
CONTRIBUTIONS): by node kind, switch type and the roles of a link's two ends; whole-lab passes
run first (the `sriov` section) and last (addresses and routes). What no mechanism builds raises
UnsupportedError.
"""

from __future__ import annotations

import vnet.mechanisms  # noqa: F401  (registers every mechanism's contributions)
from vnet.mechanisms.base import CONTRIBUTIONS, Builder, HostFacts, contribution, role
from vnet.resources import DesiredState
from vnet.topology.lab import Lab


def compile_lab(lab: Lab, facts: HostFacts | None = None) -> DesiredState:
    """Everything the lab needs on the host. Raises UnsupportedError for what vnet cannot build."""
    out = Builder(lab, facts or HostFacts())
    for first in CONTRIBUTIONS.first:
        first(out)
    for name, node in lab.topology.nodes.items():
        contribution(CONTRIBUTIONS.nodes, node.kind, f"node kind `{node.kind}`")(out, name)
    for name, switch in lab.topology.switches.items():
        contribution(CONTRIBUTIONS.switches, switch.type, f"switch type `{switch.type}`")(out, name)
    for link in lab.links:
        roles = frozenset(role(lab, end) for end in link.ends)
        what = f"a link between {' and '.join(sorted(roles))} ({out.where(link)})"
        contribution(CONTRIBUTIONS.links, roles, what)(out, link)
    for last in CONTRIBUTIONS.last:
        last(out)
    return DesiredState(lab.name, out.resources)

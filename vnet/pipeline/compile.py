"""Checked lab -> DesiredState: the host objects it needs, with their names and ownership marks
(vnet/marks.py). Pure: what it needs to know about the host comes in `facts` (the probe stage).

The mechanisms' contributions are looked up in registries (vnet/mechanisms/base.py
CONTRIBUTIONS): by node kind, switch type and the roles of a link's two ends; whole-lab passes
run first (the `sriov` section) and last (addresses and routes). What no mechanism builds raises
UnsupportedError, and so do the link fields that are checked but not built yet (`impair`,
`state: down`): a lab built without them would not behave as its file says.
"""

from __future__ import annotations

import vnet.mechanisms  # noqa: F401  (registers every mechanism's contributions)
from vnet.mechanisms.base import CONTRIBUTIONS, Builder, HostFacts, UnsupportedError, contribution, role
from vnet.resources import DesiredState
from vnet.topology.lab import Lab, LinkInfo


def compile_lab(lab: Lab, facts: HostFacts | None = None) -> DesiredState:
    """Everything the lab needs on the host. Raises UnsupportedError for what vnet cannot build."""
    refuse_unbuilt(lab)
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


def _unbuilt(link: LinkInfo) -> list[str]:
    """The fields of a link that vnet checks but cannot build yet."""
    impaired = link.spec.impair is not None and link.spec.impair.directions != (None, None)
    return [field for field, used in (("impair", impaired), ("state", link.spec.state == "down")) if used]


def refuse_unbuilt(lab: Lab) -> None:
    """Stop before anything is compiled (or changed) when the lab uses what is not built yet."""
    places: dict[str, list[str]] = {}
    for link in lab.links:
        for field in _unbuilt(link):
            mark = lab.source.locate(("links", link.index, field), key=True)  # or its `defaults:` key
            place = f"{lab.file}:{mark.line}"
            if place not in places.setdefault(field, []):
                places[field].append(place)
    if places:
        what = {"impair": "link impairments (`impair`)", "state": "down links (`state: down`)"}
        found = "; ".join(f"{what[field]} at {', '.join(where)}" for field, where in places.items())
        raise UnsupportedError(f"{found}: not implemented yet, this version of vnet checks them but "
                               "cannot apply them",
                               "remove them to plan or apply the lab (`impair: {}` or `state: up` on a "
                               "link turns them off); `vnet validate` and `vnet graph` take them")

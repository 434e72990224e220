"""What a lab has on this host, per node: `vnet status`'s view of an observed state.

Every resource says where in the topology it comes from (`origin`: `h1`, `h1:eth0`, `sw1`) and
what is worth showing of it (`facts`: MACs, addresses, the host device at the other end of a
veth, the OVS port and VLAN, a guest's pid and serial log). Here those are gathered under the
node and interface they belong to; no kind is special-cased, so a new mechanism's resources
show up by saying their facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vnet.resources import Resource, ResourceKey, origin_of

# The kind of node (or switch) whose own resource this is: a node of a `kind: tap` has none.
NODE_KINDS = {"netns": "netns", "vm": "vm", "bridge": "linux switch", "ovs-bridge": "ovs switch"}

Facts = tuple[tuple[str, tuple[str, ...]], ...]  # (field, values), in the order first said


@dataclass(frozen=True)
class InterfaceStatus:
    name: str
    facts: Facts


@dataclass(frozen=True)
class NodeStatus:
    name: str
    kind: str  # netns, vm, tap, linux switch, ovs switch; "-" when nothing says
    facts: Facts
    interfaces: tuple[InterfaceStatus, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "facts": {f: list(v) for f, v in self.facts},
                "interfaces": [{"name": i.name, "facts": {f: list(v) for f, v in i.facts}}
                               for i in self.interfaces]}


def _add(table: dict[str, dict[str, list[str]]], origin: str, field: str, value: str) -> None:
    values = table.setdefault(origin, {}).setdefault(field, [])
    if value not in values:
        values.append(value)


def _frozen(fields: Mapping[str, list[str]]) -> Facts:
    return tuple((field, tuple(values)) for field, values in fields.items())


def nodes(lab: str, resources: Mapping[ResourceKey, Resource],
          kinds: Mapping[str, str] | None = None) -> tuple[NodeStatus, ...]:
    """The lab's nodes and switches as the host has them, sorted by name; `kinds` (from the
    file, when there is one) names the kind of each node."""
    table: dict[str, dict[str, list[str]]] = {}
    found_kinds: dict[str, str] = {}
    places = {place: r for r in resources.values() for place in r.occupies()}

    def where(resource: Resource) -> str:
        found = origin_of(resource, lab, resources)
        carried = places.get(resource.carries) if resource.carries else None
        return found or (origin_of(carried, lab, resources) if carried is not None else "")

    for resource in resources.values():
        origin = where(resource)
        if origin and ":" not in origin and resource.kind in NODE_KINDS:
            found_kinds[origin] = NODE_KINDS[resource.kind]
        for fact in resource.facts(lab):
            about = fact.about
            if isinstance(about, tuple):
                about = where(resources[about]) if about in resources else ""
            target = origin if about is None else about
            if target and "~" not in target:  # not switch-to-switch links: they are no node's
                _add(table, target, fact.field, fact.value)
    for origin in found_kinds:
        table.setdefault(origin, {})
    by_node: dict[str, list[InterfaceStatus]] = {}
    own: dict[str, Facts] = {}
    for origin, fields in sorted(table.items()):
        node, _, iface = origin.partition(":")
        if iface:
            by_node.setdefault(node, []).append(InterfaceStatus(iface, _frozen(fields)))
        else:
            own[node] = _frozen(fields)
    names = sorted(set(own) | set(by_node))
    kinds = kinds or {}
    return tuple(NodeStatus(name, kinds.get(name) or found_kinds.get(name, "-"),
                            own.get(name, ()), tuple(by_node.get(name, ())))
                 for name in names)

"""diff + plan: desired vs observed -> ordered changes, grouped into waves that can be batched.

- A desired resource the host lacks is created; an owned one the topology no longer has is
  deleted; one that differs is updated in place when only mutable fields differ, else
  recreated (delete, then create).
- Deleting or recreating something also recreates what depends on it (a veth inside a
  namespace dies with the namespace; a bridge port loses its master with the bridge).
- Order (networkx): creates and updates after the creates and updates of what they depend on;
  deletes before the deletes and updates of what they depend on (an SR-IOV PF's VF count changes
  in place once the VFs' users are gone); a delete before any create that reuses the same name.
  Changes in one topological generation are independent: a wave, executed as one batch.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from vnet.resources import DesiredState, DeviceEnd, ObservedState, Resource, ResourceKey

# Execution order of kinds inside one wave (they are independent there; this keeps output stable).
KIND_ORDER = ("netns", "bridge", "ovs-bridge", "veth", "tap", "stray", "ovs-port", "address", "route", "vm")
# Kinds whose changes go in as few transactions as possible: all their deletes in one wave,
# all their creates and updates in another (one OVSDB transaction each; one on a fresh apply).
TRANSACTIONAL = frozenset({"ovs-bridge", "ovs-port"})
# Kinds that hold on to a kernel device from the moment they are made (ovs-vswitchd opens a
# port's device once; QEMU keeps its TAPs open): when the device is created anew (deleted or
# renamed by hand), they are remade too, or they stay bound to the device that is gone.
BINDS_DEVICE = frozenset({"ovs-port", "vm"})


class Action(enum.StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class Change:
    action: Action
    key: ResourceKey
    desired: Resource | None  # for create and update
    observed: Resource | None  # for update and delete
    reason: str

    @property
    def resource(self) -> Resource:
        found = self.desired if self.action is not Action.DELETE else self.observed
        assert found is not None
        return found

    def inverse(self) -> Change:
        """The change that undoes this one (for rollback)."""
        undo = {Action.CREATE: Action.DELETE, Action.DELETE: Action.CREATE, Action.UPDATE: Action.UPDATE}
        return Change(undo[self.action], self.key, self.observed, self.desired, f"roll back {self.action}")

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action.value, "kind": self.key[0], "name": self.key[1],
                "reason": self.reason}


@dataclass(frozen=True)
class Plan:
    lab: str
    changes: tuple[Change, ...]  # execution order
    waves: tuple[tuple[Change, ...], ...]
    notes: tuple[str, ...] = ()  # what the user should know (e.g. which OVS datapath)

    @property
    def empty(self) -> bool:
        return not self.changes

    def counts(self) -> dict[str, int]:
        return {a.value: sum(c.action is a for c in self.changes) for a in Action}

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "changes": [c.to_json() for c in self.changes], "summary": self.counts(),
                "notes": list(self.notes)}


def _effective(observed: Any, desired: Any) -> Any:
    """`observed` with the fields the desired value leaves open (None) set to None too."""
    if not isinstance(observed, Resource | DeviceEnd) or type(observed) is not type(desired):
        return observed
    updates: dict[str, Any] = {}
    for f in dataclasses.fields(observed):
        want, have = getattr(desired, f.name), getattr(observed, f.name)
        if want is None:
            updates[f.name] = None
        elif isinstance(want, DeviceEnd):
            updates[f.name] = _effective(have, want)
    return dataclasses.replace(observed, **updates)


def can_update(resource: Resource, changed: frozenset[str]) -> bool:
    """True when every changed field can be changed in place."""
    if resource.kind in ("veth", "tap"):
        return all(name.startswith(("a.", "b.", "end.")) and not name.endswith(".place")
                   for name in changed)
    return changed <= resource.MUTABLE


def _compare(desired: Resource, observed: Resource) -> list[Change]:
    effective = _effective(observed, desired)
    changed = desired.differing(effective)
    if not changed:
        return []
    what = ", ".join(sorted(changed))
    if can_update(desired, changed):
        return [Change(Action.UPDATE, desired.key, desired, observed, f"differs: {what}")]
    verb = desired.RECREATE
    return [Change(Action.DELETE, desired.key, None, observed, f"{verb}: {what}"),
            Change(Action.CREATE, desired.key, desired, None, f"{verb}: {what}")]


def _rebinds(key: ResourceKey, desired: DesiredState, made: set[ResourceKey]) -> bool:
    """Whether `key` holds on to a device that is being made anew (`made`: created or recreated)."""
    want = desired.resources.get(key)
    return key[0] in BINDS_DEVICE and want is not None and any(dep in made for dep in want.depends_on())


def _cascade(changes: list[Change], desired: DesiredState, observed: ObservedState) -> list[Change]:
    """Recreate whatever depends on something being deleted, and what holds on to a device that
    is being created anew."""
    doomed = {c.key for c in changes if c.action is Action.DELETE}
    made = {c.key for c in changes if c.action is Action.CREATE}
    touched = {c.key for c in changes}
    grew = True
    while grew:
        grew = False
        for key, resource in observed.resources.items():
            if key in doomed or not (any(dep in doomed for dep in resource.depends_on())
                                     or _rebinds(key, desired, made | doomed)):
                continue
            doomed.add(key)
            grew = True
            changes = [c for c in changes if c.key != key]
            changes.append(Change(Action.DELETE, key, None, resource, "its dependency is recreated"))
            if key in desired.resources:
                changes.append(Change(Action.CREATE, key, desired.resources[key], None,
                                      "its dependency is recreated"))
            touched.add(key)
    return changes


def diff(desired: DesiredState, observed: ObservedState) -> list[Change]:
    changes: list[Change] = []
    for key, want in desired.resources.items():
        have = observed.resources.get(key)
        if have is None:
            changes.append(Change(Action.CREATE, key, want, None, "missing"))
        else:
            changes.extend(_compare(want, have))
    for key, have in observed.resources.items():
        if key not in desired.resources:
            changes.append(Change(Action.DELETE, key, None, have, "not in the topology"))
    return _cascade(changes, desired, observed)


def _order_edges(changes: list[Change]) -> Iterable[tuple[int, int]]:
    index = {(c.action, c.key): i for i, c in enumerate(changes)}
    for i, change in enumerate(changes):
        deps = change.resource.depends_on()
        if change.action is Action.DELETE:
            yield from ((i, index[(a, d)]) for d in deps for a in (Action.DELETE, Action.UPDATE)
                        if (a, d) in index)
            if (Action.CREATE, change.key) in index:
                yield i, index[(Action.CREATE, change.key)]
        else:
            yield from ((index[(a, d)], i) for d in deps for a in (Action.CREATE, Action.UPDATE)
                        if (a, d) in index)
    occupied: dict[tuple[str, str], list[int]] = {}
    for i, change in enumerate(changes):
        if change.action is Action.DELETE:
            for name in change.resource.occupies():
                occupied.setdefault(name, []).append(i)
    for i, change in enumerate(changes):
        if change.action is Action.CREATE:
            for name in change.resource.occupies():
                yield from ((d, i) for d in occupied.get(name, ()) if d != i)


def _wave_order(change: Change) -> tuple[int, int, str]:
    kind = change.key[0]
    rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
    # deletes of dependents first within a wave, creates of dependencies first
    return (0 if change.action is Action.DELETE else 1,
            -rank if change.action is Action.DELETE else rank, change.key[1])


# Guests start last, all in one wave: their network is complete when they boot, and the
# apply waits for their agents once (in parallel) instead of once per wave.
GUEST_START = "guest-start"


def _unit(change: Change, i: int) -> int | str:
    """The scheduling unit of a change: itself, or its group."""
    if change.key[0] in TRANSACTIONAL:
        return "txn-delete" if change.action is Action.DELETE else "txn-apply"
    if change.key[0] == "vm" and change.action is Action.CREATE:
        return GUEST_START
    return i


def _generations(changes: list[Change]) -> list[list[int]]:
    """Topological generations, with each transactional group kept in a single generation."""
    units = [_unit(c, i) for i, c in enumerate(changes)]
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(units)
    graph.add_edges_from((units[a], units[b]) for a, b in _order_edges(changes) if units[a] != units[b])
    if GUEST_START in graph:
        graph.add_edges_from((unit, GUEST_START) for unit in units if unit != GUEST_START)
    if not nx.is_directed_acyclic_graph(graph):  # cannot group: schedule change by change
        units = list(range(len(changes)))
        graph = nx.DiGraph()
        graph.add_nodes_from(units)
        graph.add_edges_from(_order_edges(changes))
    members: dict[int | str, list[int]] = {}
    for i, unit in enumerate(units):
        members.setdefault(unit, []).append(i)
    return [[i for unit in generation for i in members[unit]]
            for generation in nx.topological_generations(graph)]


def make_plan(desired: DesiredState, observed: ObservedState) -> Plan:
    changes = diff(desired, observed)
    waves = tuple(tuple(sorted((changes[i] for i in generation), key=_wave_order))
                  for generation in _generations(changes))
    ordered = tuple(c for wave in waves for c in wave)
    return Plan(desired.lab, ordered, waves)

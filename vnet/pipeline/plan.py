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
from collections.abc import Iterable

from vnet.resources import (
    Action,
    Change,
    DesiredState,
    FieldChange,
    ObservedState,
    Plan,
    Resource,
    ResourceKey,
    open_fields,
    origin_of,
)


def _compare(desired: Resource, observed: Resource) -> list[Change]:
    changed = desired.differing(open_fields(observed, desired))
    if not changed:
        return []
    what = ", ".join(sorted(changed))
    values = tuple(FieldChange.between(name, observed, desired) for name in sorted(changed))
    if desired.can_update(changed):
        return [Change(Action.UPDATE, desired.key, desired, observed, f"differs: {what}", values)]
    verb = desired.RECREATE
    return [Change(Action.DELETE, desired.key, None, observed, f"{verb}: {what}", values),
            Change(Action.CREATE, desired.key, desired, None, f"{verb}: {what}", values)]


def _rebinds(key: ResourceKey, desired: DesiredState, made: set[ResourceKey]) -> bool:
    """Whether `key` holds on to a device that is being made anew (`made`: created or recreated)."""
    want = desired.resources.get(key)
    return want is not None and want.binds_device and any(dep in made for dep in want.depends_on())


def _cascade(changes: list[Change], desired: DesiredState, observed: ObservedState) -> list[Change]:
    """Recreate whatever depends on something being deleted, and what holds on to a device that
    is being created anew."""
    doomed = {c.key for c in changes if c.action is Action.DELETE}
    made = {c.key for c in changes if c.action is Action.CREATE}
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
    return changes


def diff(desired: DesiredState, observed: ObservedState, teardown: bool = False) -> list[Change]:
    """The changes from `observed` to `desired`. `teardown` (destroy: nothing is desired and
    nothing is rolled back): what goes with its container (devices with their namespace) is
    not deleted on its own."""
    changes: list[Change] = []
    for key, want in desired.resources.items():
        have = observed.resources.get(key)
        if have is None:
            changes.append(Change(Action.CREATE, key, want, None, "missing"))
        else:
            changes.extend(_compare(want, have))
    for key, have in observed.resources.items():
        container = have.contained_in()
        if key in desired.resources or (teardown and container in observed.resources):
            continue
        changes.append(Change(Action.DELETE, key, None, have, "not in the topology"))
    return _cascade(changes, desired, observed) if not teardown else changes


def _order_edges(changes: list[Change]) -> Iterable[tuple[int, int]]:
    index = {(c.action, c.key): i for i, c in enumerate(changes)}
    for i, change in enumerate(changes):
        deleting = change.action is Action.DELETE
        deps = change.resource.deleted_after() if deleting else change.resource.depends_on()
        if deleting:
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
    rank = change.resource.rank
    # deletes of dependents first within a wave (the teardown order), creates of dependencies first
    return (0 if change.action is Action.DELETE else 1,
            -rank if change.action is Action.DELETE else rank, change.key[1])


# Resources that start last (guests), all in one wave: their network is complete when they
# boot, and apply waits for them once (in parallel) instead of once per wave.
LAST = "last"


def _unit(change: Change, i: int) -> int | str:
    """The scheduling unit of a change: itself, or its group (one transaction, or the last wave)."""
    resource = change.resource
    if resource.transaction:
        return f"{resource.transaction}-{'delete' if change.action is Action.DELETE else 'apply'}"
    if resource.starts_last and change.action is Action.CREATE:
        return LAST
    return i


def _generations(changes: list[Change]) -> list[list[int]]:
    """Topological generations, with each transactional group kept in a single generation."""
    if not changes:  # a no-op plan: no graph, and no networkx to import (~0.1 s of `vnet plan`)
        return []
    import networkx as nx  # noqa: PLC0415 (see above)

    units = [_unit(c, i) for i, c in enumerate(changes)]
    graph: nx.DiGraph = nx.DiGraph()
    graph.add_nodes_from(units)
    graph.add_edges_from((units[a], units[b]) for a, b in _order_edges(changes) if units[a] != units[b])
    if LAST in graph:
        graph.add_edges_from((unit, LAST) for unit in units if unit != LAST)
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


def make_plan(desired: DesiredState, observed: ObservedState, teardown: bool = False) -> Plan:
    states = (desired.resources, observed.resources)
    changes = [dataclasses.replace(c, origin=origin_of(c.resource, desired.lab, *states))
               for c in diff(desired, observed, teardown)]
    waves = tuple(tuple(sorted((changes[i] for i in generation), key=_wave_order))
                  for generation in _generations(changes))
    ordered = tuple(c for wave in waves for c in wave)
    return Plan(desired.lab, ordered, waves)

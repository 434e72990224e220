"""The planner/driver contract: host objects as frozen values, the states of a lab, changes and
plans, and what a driver answers.

Both sides of a diff use the same resource types, so comparing desired with observed is `==` on
the fields that matter, and rolling back a delete is creating the observed value again. Each
resource class says, for the planner:
- its key (`key`, built by the class: `OvsBridge.key_of(name)`), what it depends on, the
  (namespace, name) places it occupies;
- which fields change in place (`MUTABLE`, or `can_update`); any other difference recreates it;
- `rank`: its place in a wave (creates by rank, deletes in reverse: the teardown order);
- `transaction`: a group name; its changes go into as few driver calls as possible (all the
  group's deletes in one wave, its creates and updates in another: one OVSDB transaction each);
- `starts_last`: its creates all go in the last wave (guests boot on a complete network);
- `binds_device`: it holds on to a kernel device it depends on from the moment it is made
  (QEMU its TAPs, ovs-vswitchd a port's device), so a device made anew remakes it too;
- `contained_in`: the resource whose deletion takes it along (a namespace its devices), so a
  delete of both needs only the container's.
The resource classes live with their mechanism (vnet/mechanisms/<name>/resources.py).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol

ResourceKey = tuple[str, str]  # (kind, identity)
HOST = ""  # the host's own network namespace, as a namespace name
NAMESPACES = "netns"  # where namespace names live, for `occupies` ((NAMESPACES, name))


@dataclass(frozen=True)
class Fact:
    """One thing `status` shows about a node or one of its interfaces (`mac`, `address`, `pid`).
    `about`: the origin it belongs to (`h1:eth0`), a resource whose origin it is, or None for
    the origin of the resource that says it."""

    about: str | ResourceKey | None
    field: str
    value: str


@dataclass(frozen=True)
class Resource:
    kind: ClassVar[str] = ""
    MUTABLE: ClassVar[frozenset[str]] = frozenset()
    RECREATE: ClassVar[str] = "recreate"  # what plan calls a delete + create of this kind
    rank: ClassVar[int] = 50
    transaction: ClassVar[str] = ""
    starts_last: ClassVar[bool] = False
    binds_device: ClassVar[bool] = False

    @classmethod
    def key_of(cls, identity: str) -> ResourceKey:
        return (cls.kind, identity)

    @property
    def key(self) -> ResourceKey:
        raise NotImplementedError

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return ()

    def deleted_after(self) -> tuple[ResourceKey, ...]:
        """What may be deleted only after this one: what it depends on, unless the host lets go
        of the tie by itself (a bridge port outlives its bridge)."""
        return self.depends_on()

    def occupies(self) -> tuple[tuple[str, str], ...]:
        """(namespace, device name) pairs this resource needs; a clash orders delete before create."""
        return ()

    def contained_in(self) -> ResourceKey | None:
        return None

    def differing(self, other: Resource) -> frozenset[str]:
        """Names of the fields whose values differ from `other`."""
        return frozenset(f.name for f in fields(self) if f.compare
                         and getattr(self, f.name) != getattr(other, f.name))

    def can_update(self, changed: frozenset[str]) -> bool:
        """True when every changed field can be changed in place."""
        return changed <= self.MUTABLE

    def describe(self) -> str:
        return f"{self.kind} {self.key[1]}"

    def origin(self, lab: str) -> str:
        """What of the topology this comes from (`h1:eth0`, `sw1`, `vm1`), for plans and drift;
        "" when the resource does not know (then its `origin_key`'s origin is used)."""
        return ""

    @property
    def origin_key(self) -> ResourceKey | None:
        """The resource whose origin this one shares (an address: its device's)."""
        return None

    @property
    def carries(self) -> tuple[str, str] | None:
        """The device (namespace, name) it is put on, when only its name says so (an observed
        OVS port): it shares the origin of whatever occupies that name."""
        return None

    def facts(self, lab: str) -> tuple[Fact, ...]:
        """What `status` shows of it, as observed (MACs, addresses, pids)."""
        return ()


def open_fields(observed: Any, desired: Any) -> Any:
    """`observed` with the fields the desired value leaves open (None) set to None too, also in
    nested dataclass values (a device end of a pair): they are not compared."""
    if not dataclasses.is_dataclass(observed) or type(observed) is not type(desired):
        return observed
    updates: dict[str, Any] = {}
    for f in fields(observed):
        want, have = getattr(desired, f.name), getattr(observed, f.name)
        if want is None:
            updates[f.name] = None
        elif dataclasses.is_dataclass(want):
            updates[f.name] = open_fields(have, want)
    return dataclasses.replace(observed, **updates)  # type: ignore[type-var]


@dataclass(frozen=True)
class DesiredState:
    """Everything a lab needs on the host, keyed; produced by `compile`."""

    lab: str
    resources: dict[ResourceKey, Resource]


@dataclass(frozen=True)
class ObservedState:
    """What the host has that carries the lab's mark, plus names the lab wants that others hold."""

    lab: str
    resources: dict[ResourceKey, Resource]
    # (namespace, device name) -> who holds it ("ovs" namespace: OVS bridge and port names)
    foreign_names: dict[tuple[str, str], str] = field(default_factory=dict)
    foreign_namespaces: dict[str, str] = field(default_factory=dict)


def origin_of(resource: Resource, lab: str, *states: Mapping[ResourceKey, Resource]) -> str:
    """Where in the topology a resource comes from: its own say, else (a few steps at most) its
    origin_key's, looked up in `states`."""
    for _ in range(4):
        found = resource.origin(lab)
        following = None if found or resource.origin_key is None else next(
            (s[resource.origin_key] for s in states if resource.origin_key in s), None)
        if following is None:
            return found
        resource = following
    return ""


def field_value(resource: Resource, dotted: str) -> Any:
    """A field of a resource by its `differing` name (`tag`, `a.mtu`; `a.place`: netns/name)."""
    value: Any = resource
    for part in dotted.split("."):
        value = f"{value.netns or 'host'}/{value.name}" if part == "place" else getattr(value, part)
    return value


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


LONG_VALUE = 40  # characters: a longer value (a guest's argv) is shown as what was removed/added


@dataclass(frozen=True)
class FieldChange:
    """One field of a resource, as the host has it and as the topology wants it."""

    field: str
    old: str
    new: str

    @classmethod
    def between(cls, dotted: str, observed: Resource, desired: Resource) -> FieldChange:
        have, want = field_value(observed, dotted), field_value(desired, dotted)
        old, new = _shown(have), _shown(want)
        if isinstance(have, tuple) and isinstance(want, tuple) and len(old) + len(new) > 2 * LONG_VALUE:
            old = " ".join(str(v) for v in have if v not in want) or "-"
            new = " ".join(str(v) for v in want if v not in have) or "-"
        return cls(dotted, old, new)

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "old": self.old, "new": self.new}

    def __str__(self) -> str:
        return f"{self.field} {self.old} → {self.new}"


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
    differences: tuple[FieldChange, ...] = ()  # of an update or recreate: old -> new per field
    origin: str = ""  # what of the topology it comes from (node:iface, switch, node), if known

    @property
    def resource(self) -> Resource:
        found = self.desired if self.action is not Action.DELETE else self.observed
        assert found is not None
        return found

    def inverse(self) -> Change:
        """The change that undoes this one (for rollback)."""
        undo = {Action.CREATE: Action.DELETE, Action.DELETE: Action.CREATE, Action.UPDATE: Action.UPDATE}
        back = tuple(FieldChange(d.field, d.new, d.old) for d in self.differences)
        return Change(undo[self.action], self.key, self.observed, self.desired, f"roll back {self.action}",
                      back, self.origin)

    def explained(self) -> str:
        """The reason with the values: `differs: tag 10 → 20`."""
        if not self.differences:
            return self.reason
        return self.reason.split(":")[0] + ": " + ", ".join(str(d) for d in self.differences)

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action.value, "kind": self.key[0], "name": self.key[1],
                "origin": self.origin, "reason": self.reason,
                "differences": [d.to_json() for d in self.differences]}


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


@dataclass(frozen=True)
class Failure:
    """Why a driver could not carry out a change."""

    text: str
    errno: int | None = None
    hint: str = ""
    gone: bool = False  # the object to delete was not there: for rollback, nothing to undo

    def __str__(self) -> str:
        return self.text + (f" ({self.hint})" if self.hint else "")


class Driver(Protocol):
    """Carries out independent changes of its mechanism's resources (one wave, batched as it can)."""

    def execute(self, changes: Sequence[Change]) -> list[Failure | None]:
        """Per change: None (done) or its Failure."""

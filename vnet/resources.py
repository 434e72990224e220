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
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol

ResourceKey = tuple[str, str]  # (kind, identity)
HOST = ""  # the host's own network namespace, as a namespace name
NAMESPACES = "netns"  # where namespace names live, for `occupies` ((NAMESPACES, name))


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

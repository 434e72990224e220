"""A macvlan device of a host device, in a node's namespace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from vnet.marks import within
from vnet.mechanisms.kernel.resources import DeviceEnd, Netns
from vnet.resources import Resource, ResourceKey


@dataclass(frozen=True)
class Macvlan(Resource):
    """`end` is the device in the node's namespace; `parent` the host device it is made on (not
    the lab's: it is only read). Bridge mode: the lab's macvlans of one parent reach each other."""

    kind: ClassVar[str] = "macvlan"
    rank: ClassVar[int] = 40  # after namespaces, before addresses
    MUTABLE: ClassVar[frozenset[str]] = frozenset({"end"})  # alias, MAC, MTU, state
    end: DeviceEnd
    parent: str

    @property
    def key(self) -> ResourceKey:
        return self.key_of(f"{self.end.netns}/{self.end.name}")

    def depends_on(self) -> tuple[ResourceKey, ...]:
        return (Netns.key_of(self.end.netns),)

    def occupies(self) -> tuple[tuple[str, str], ...]:
        return ((self.end.netns, self.end.name),)

    def contained_in(self) -> ResourceKey | None:
        return Netns.key_of(self.end.netns)

    def origin(self, lab: str) -> str:
        return within(lab, self.end.alias)

"""Where each key of the format belongs, for keys written at the wrong level.

A key indented one level too little or too much lands in another mapping, where it is unknown
(or, among the node names, an entry that is not a mapping). When the key is a field somewhere
else in the format, the diagnostic says where (`key-misplaced`) instead of offering a fuzzy
"did you mean". The places are a registry, in the order of the format's sections.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from vnet.topology import model as m


@dataclass(frozen=True)
class Place:
    """One kind of mapping in a topology and the keys it takes."""

    name: str  # "a node option": what a key of this place is
    where: str  # its path with placeholders, `{key}` for the key
    models: tuple[type[BaseModel], ...]
    parent: str | None = None  # the `name` of the place that holds this one
    # A section or an entry of one: a key may have drifted there from any other place. The
    # places inside an entry (a route, an image) are only offered from the entry around them.
    entry: bool = True

    def fields(self) -> set[str]:
        return {field.alias or name for model in self.models for name, field in model.model_fields.items()}


TOP = Place("a top-level section", "{key}", (m.Topology,))
DEFAULTS = Place("a `defaults:` key", "defaults.{key}", (m.Defaults,), TOP.name)
POOL = Place("a pool field", "networks.<pool>.{key}", (m.Network,), TOP.name)
NODE = Place("a node option", "nodes.<node>.{key}", tuple(m.NODE_KINDS.values()), TOP.name)
SWITCH = Place("a switch option", "switches.<switch>.{key}", tuple(m.SWITCH_TYPES.values()), TOP.name)
PF = Place("an SR-IOV PF field", "sriov.<pf>.{key}", (m.PfSpec,), TOP.name)
PLACES: tuple[Place, ...] = (
    TOP,
    DEFAULTS,
    POOL,
    SWITCH,
    NODE,
    Place("a route field", "nodes.<node>.routes[<n>].{key}", (m.Route,), NODE.name, entry=False),
    Place("an image field", "nodes.<vm>.image.{key}", (m.KernelImage, m.DiskImage), NODE.name, entry=False),
    Place("a link field", "links[<n>].{key}", (m.Link,), TOP.name),
    Place("a policing field", "links[<n>].police.{key}", (m.Policing,), "a link field", entry=False),
    Place("an `impair` field", "links[<n>].impair.{key}", (m.LinkImpairment, m.Impairment), "a link field",
          entry=False),
    PF,
    Place("a VF setting", "sriov.<pf>.vfs.<n>.{key}", (m.VfSpec,), PF.name, entry=False),
    # Its keys (`from`, `to`, `reach`) say what is proved, not where anything is: never offered.
    Place("an `expect` field", "expect[<n>].{key}", (m.Expectation,), TOP.name, entry=False),
)
# Keys that say what an entry is rather than where it sits: `kind` and `type` in the wrong
# mapping are a node written among switches (or the reverse), not an indentation mistake.
_NOT_PLACED = frozenset({"kind", "type"})


@dataclass(frozen=True)
class Misplaced:
    """A key that belongs to another place: the message and hint parts of `key-misplaced`."""

    key: str
    here: Place | None
    owners: tuple[Place, ...]
    at: str = ""  # the path of the mapping the key was found in (`nodes.h1`), to fill placeholders

    @property
    def message(self) -> str:
        what = " or ".join(owner.name for owner in self.owners)
        return f"`{self.key}` is {what}, not {self.here.name if self.here else 'a key here'}"

    @property
    def hint(self) -> str:
        if self.owners[0] is TOP:
            return (f"write `{self.key}:` at the start of a line, without indentation "
                    "(a key's indentation says which mapping it belongs to)")
        targets = " or ".join(f"`{self._where(owner)}`" for owner in self.owners)
        return f"it belongs at {targets}: check its indentation, or move it there"

    def _where(self, owner: Place) -> str:
        """The owner's path, with the names of the mapping around the key where it is inside it."""
        where = owner.where.format(key=self.key)
        outer = self.here.where.removesuffix(".{key}") if self.here else ""
        if self.at and self.here is not None and owner.parent == self.here.name and where.startswith(outer):
            return self.at + where[len(outer):]
        return where


def place_of(model: type[BaseModel]) -> Place | None:
    return next((place for place in PLACES if model in place.models), None)


def misplaced(key: str, here: type[BaseModel] | None, at: str = "") -> Misplaced | None:
    """Where `key` belongs when the mapping of `here` (None: an unknown one) does not take it.
    The places nearest `here` come first: its children, its parent, then the others."""
    current = place_of(here) if here is not None else None
    if key in _NOT_PLACED or current is DEFAULTS:  # a field with no default is not misplaced there
        return None
    name = current.name if current else None

    def nearness(place: Place) -> int:
        if place.parent is not None and place.parent == name:
            return 0
        return 1 if current is not None and place.name == current.parent else 2

    # `defaults:` keys are other places' fields: it is never where a stray key belongs.
    owners = sorted((place for place in PLACES if place is not current and place is not DEFAULTS
                     and key in place.fields() and (place.entry or nearness(place) < 2)), key=nearness)
    if not owners:
        return None
    best = nearness(owners[0])
    return Misplaced(key, current, tuple(p for p in owners if nearness(p) == best)[:2], at)


# The sections whose keys are names: what an entry is, and the place of its own keys.
ENTRY_PLACES: dict[str, tuple[str, Place]] = {
    "networks": ("pool", POOL), "switches": ("switch", SWITCH), "nodes": ("node", NODE), "sriov": ("PF", PF),
}


def misplaced_entry(section: str, key: str, previous: str | None) -> tuple[str, str] | None:
    """(message, hint) for an entry among the names of `section` that is not a mapping and whose
    name is a key of another level: most often an option of the entry above, indented too little."""
    noun, place = ENTRY_PLACES[section]
    if key in place.fields():
        under = f"`{previous}`, the {noun} above it" if previous else f"the {noun} it belongs to"
        where = f"{section}.{previous or f'<{noun}>'}.{key}"
        return (f"`{key}` is {place.name}, not a {noun}: it is indented one level too little",
                f"indent it under {under}: `{where}`")
    found = misplaced(key, None)
    if found is None:
        return None
    return f"`{key}` is {' or '.join(o.name for o in found.owners)}, not a {noun}", found.hint

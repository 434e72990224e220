"""What a mechanism is, and the registries its pieces plug into.

A mechanism (vnet/mechanisms/<name>/) owns some kinds of host objects end to end: their
resources, what the compiler makes of the topology for them (compile contributions registered
here by node kind, switch type and link end roles), how they are observed on the host, how
observations are matched with the desired state, and the driver that changes them. The pipeline
(vnet/pipeline/) knows mechanisms only through `Mechanism` and these registries; the list of
mechanisms is vnet/mechanisms/__init__.py. docs/architecture.md shows how to add one.

Layers: a mechanism imports the topology, the resources, vnet.netlink, vnet.host and vnet.vm,
and may build on a mechanism below it (everything builds on kernel); never on the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from vnet.errors import UnavailableError
from vnet.interrupt import Interrupt
from vnet.progress import Progress
from vnet.resources import DesiredState, Driver, ObservedState, Resource, ResourceKey
from vnet.topology.lab import Lab, LinkInfo
from vnet.topology.names import Endpoint, SwitchEnd

T = TypeVar("T")


class UnsupportedError(UnavailableError):
    """The topology uses something this version of vnet cannot build yet."""


@dataclass(frozen=True)
class HostFacts:
    """What the probe stage found out about the host for a lab: one value per mechanism that
    needs one (its own dataclass), looked up by type."""

    parts: tuple[Any, ...] = ()

    def get(self, kind: type[T]) -> T | None:
        return next((p for p in self.parts if isinstance(p, kind)), None)


@dataclass
class Builder:
    """What compile contributions add resources to (the compile stage is pure: no host reads)."""

    lab: Lab
    facts: HostFacts
    resources: dict[ResourceKey, Resource] = field(default_factory=dict)
    # (node, iface) -> (namespace, device name, creating resource): where addresses go
    devices: dict[tuple[str, str], tuple[str, str, ResourceKey]] = field(default_factory=dict)

    def add(self, resource: Resource) -> None:
        self.resources[resource.key] = resource

    def where(self, link: LinkInfo) -> str:
        position = self.lab.source.locate(("links", link.index))
        return f"{self.lab.file}:{position.line}"


NodeContribution = Callable[[Builder, str], None]
LinkContribution = Callable[[Builder, LinkInfo], None]
LabContribution = Callable[[Builder], None]


@dataclass
class Contributions:
    """Compile contributions by what they compile: node kinds, switch types, link end roles
    ("node", a switch type, and an endpoint's own role: "tunnel", "vf", ...), and whole-lab
    passes (before the nodes, or after the links: addresses and routes)."""

    nodes: dict[str, NodeContribution] = field(default_factory=dict)
    switches: dict[str, NodeContribution] = field(default_factory=dict)
    links: dict[frozenset[str], LinkContribution] = field(default_factory=dict)
    first: list[LabContribution] = field(default_factory=list)
    last: list[LabContribution] = field(default_factory=list)


CONTRIBUTIONS = Contributions()


def role(lab: Lab, end: Endpoint) -> str:
    """A link end's role for the link registry: a switch's type, else the endpoint's own."""
    return lab.topology.switches[end.name].type if isinstance(end, SwitchEnd) else end.ROLE


def contribution(registry: dict[Any, T], key: Any, what: str) -> T:
    handler = registry.get(key)
    if handler is None:
        raise UnsupportedError(f"{what} cannot be built by this version of vnet",
                               "see the README's feature status")
    return handler


class Context(Protocol):
    """What a mechanism gets from the session that runs it."""

    ovsdb: str
    notices: list[str]
    teardown: bool  # observing for destroy: what goes with its namespace need not be read

    @property
    def progress(self) -> Progress:
        """Where a driver reports what it works on (guests booting)."""

    @property
    def interrupt(self) -> Interrupt:
        """A driver's long wait stops when `interrupt.stop` (it is a safe point)."""

    def connection(self, name: str, make: Callable[[], T]) -> T:
        """A connection kept for the session (closed with it when it has `close`)."""

    def scratch(self, name: str, make: Callable[[], T]) -> T:
        """A value kept for one observation of the host (the kernel's scan of the lab)."""


@dataclass
class Observation:
    """What one mechanism found of a lab on the host: the objects it owns (carrying the lab's
    mark), raw findings its matcher needs, and names others hold."""

    resources: dict[ResourceKey, Resource] = field(default_factory=dict)
    # (namespace, name) -> who holds it, for every name seen that is not the lab's (collisions)
    held: dict[tuple[str, str], str] = field(default_factory=dict)
    foreign_namespaces: dict[str, str] = field(default_factory=dict)
    raw: Any = None  # the mechanism's own findings for `match` (unpaired veth ends, ...)


class Mechanism(Protocol):
    """One mechanism, as the pipeline drives it."""

    @property
    def name(self) -> str: ...

    @property
    def kinds(self) -> frozenset[str]:
        """The resource kinds its driver executes."""

    def probe(self, lab: Lab, ctx: Context) -> object | None:
        """Facts about the host this mechanism's compile contributions need (None: none)."""

    def require(self, desired: DesiredState, ctx: Context) -> None:
        """Raise UnavailableError (exit 69) for what the host cannot do for `desired`."""

    def start(self, desired: DesiredState, ctx: Context) -> None:
        """Before apply observes: start the services `desired` needs (the system OVS)."""

    def observe(self, lab: str, ctx: Context) -> Observation:
        """The lab's objects of this mechanism on the host (no desired state: destroy too)."""

    def match(self, desired: DesiredState | None, observed: ObservedState, own: Observation) -> None:
        """Pair raw findings with desired keys (pure): fill `observed.resources`. Matching runs
        in reverse layer order: the kernel's runs last and sees every mechanism's objects."""

    def driver(self, lab: str, ctx: Context, desired: DesiredState | None) -> Driver:
        """The driver for the lab's changes of this mechanism's kinds."""

    def notes(self, lab: Lab, desired: DesiredState, ctx: Context) -> list[str]:
        """What plan should tell the user about `desired` (e.g. which OVS datapath)."""

    def labs(self, ctx: Context) -> set[str]:
        """Labs that have objects of this mechanism on the host."""

    def holders(self, observed: ObservedState) -> dict[int, list[str]]:
        """Processes that hold the lab's objects of this mechanism (pid -> what): destroying
        those objects cuts them off (a guest on a TAP)."""


class BaseMechanism:
    """Defaults for the optional parts of a mechanism."""

    name = ""
    kinds: frozenset[str] = frozenset()

    def probe(self, lab: Lab, ctx: Context) -> object | None:
        return None

    def require(self, desired: DesiredState, ctx: Context) -> None:
        return None

    def start(self, desired: DesiredState, ctx: Context) -> None:
        return None

    def match(self, desired: DesiredState | None, observed: ObservedState, own: Observation) -> None:
        observed.resources.update(own.resources)

    def notes(self, lab: Lab, desired: DesiredState, ctx: Context) -> list[str]:
        return []

    def driver(self, lab: str, ctx: Context, desired: DesiredState | None) -> Driver:
        """Mechanisms whose kinds another driver executes (through its handlers) have none."""
        raise NotImplementedError(f"the {self.name} mechanism has no driver of its own")

    def labs(self, ctx: Context) -> set[str]:
        return set()

    def holders(self, observed: ObservedState) -> dict[int, list[str]]:
        return {}

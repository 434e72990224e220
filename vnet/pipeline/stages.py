"""The stages between a checked lab and a plan, over every mechanism (vnet/mechanisms/):

    probe(lab) -> HostFacts            what compile needs to know about the host
    compile(lab, facts) -> DesiredState pure (vnet/pipeline/compile.py)
    require(desired)                    what the host cannot do stops here (exit 69)
    observe(lab name) -> observations   what each mechanism finds of the lab; no desired state
    match(desired, observations)        pure: pairs findings with desired keys -> ObservedState
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from vnet.mechanisms import MECHANISMS
from vnet.mechanisms.base import Context, HostFacts, Observation
from vnet.pipeline.compile import compile_lab, refuse_unbuilt
from vnet.pipeline.session import Session
from vnet.resources import NAMESPACES, DesiredState, Driver, ObservedState
from vnet.topology.lab import Lab

Observations = dict[str, Observation]


def probe(lab: Lab, ctx: Context) -> HostFacts:
    return HostFacts(tuple(part for m in MECHANISMS if (part := m.probe(lab, ctx)) is not None))


def desired_state(lab: Lab, ctx: Context) -> DesiredState:
    """The lab compiled for this host; raises for what the host cannot do (nothing changed)."""
    refuse_unbuilt(lab)  # before the probes: the file alone decides it, whatever the host lacks
    desired = compile_lab(lab, probe(lab, ctx))
    for mechanism in MECHANISMS:
        mechanism.require(desired, ctx)
    return desired


def observe(lab: str, session: Session) -> Observations:
    session.new_observation()
    return {m.name: m.observe(lab, session) for m in MECHANISMS}


def match(lab: str, desired: DesiredState | None, observations: Observations) -> ObservedState:
    """The lab's objects on the host, keyed as desired, and the names it wants that others hold."""
    observed = ObservedState(lab, {})
    for mechanism in reversed(MECHANISMS):  # the kernel last: it sees every mechanism's objects
        mechanism.match(desired, observed, observations[mechanism.name])
    if desired is not None:
        wanted = {place for r in desired.resources.values() for place in r.occupies()}
        for found in observations.values():
            observed.foreign_names.update((p, who) for p, who in found.held.items() if p in wanted)
            observed.foreign_namespaces.update((n, who) for n, who in found.foreign_namespaces.items()
                                               if (NAMESPACES, n) in wanted)
    return observed


def observed_state(lab: str, desired: DesiredState | None, session: Session) -> ObservedState:
    return match(lab, desired, observe(lab, session))


def notes(lab: Lab, desired: DesiredState, ctx: Context) -> tuple[str, ...]:
    return tuple(note for m in MECHANISMS for note in m.notes(lab, desired, ctx))


class Drivers(Mapping[str, Driver]):
    """The driver of each resource kind; a mechanism's driver is made when its kinds are first
    needed (the OVSDB client only when there are OVS changes)."""

    def __init__(self, lab: str, session: Session, desired: DesiredState | None) -> None:
        self.lab, self.session, self.desired = lab, session, desired
        self._owner = {kind: m for m in MECHANISMS for kind in m.kinds}
        self._made: dict[str, Driver] = {}

    def __getitem__(self, kind: str) -> Driver:
        mechanism = self._owner[kind]
        if mechanism.name not in self._made:
            self._made[mechanism.name] = mechanism.driver(self.lab, self.session, self.desired)
        return self._made[mechanism.name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._owner)

    def __len__(self) -> int:
        return len(self._owner)

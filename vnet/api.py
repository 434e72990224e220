"""The verbs, as a Python API: load → plan → apply → verify → destroy (README, "Python API").

    import vnet
    lab = vnet.load("lab.yaml")
    print(vnet.plan(lab).to_json())
    vnet.apply(lab)
    assert vnet.verify(lab).ok
    vnet.destroy(lab.name)

`ovsdb` arguments name the OVSDB to use (default: $VNET_OVSDB, else the system socket).
Each verb runs the pipeline's stages (vnet/pipeline/stages.py) over every mechanism.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from vnet.errors import InputError, NotOnHostError, UnavailableError
from vnet.host import netns
from vnet.marks import netns_name
from vnet.mechanisms import MECHANISMS
from vnet.mechanisms.qemu import process as qemu
from vnet.pipeline import stages
from vnet.pipeline.destroy import DestroyReport, destroy_lab
from vnet.pipeline.execute import apply_plan
from vnet.pipeline.lock import check_lab_name, lab_dir, lab_lock
from vnet.pipeline.plan import make_plan
from vnet.pipeline.session import Session, default_ovsdb
from vnet.resources import Change, DesiredState, Failure, ObservedState, Plan
from vnet.topology.graph import LabGraph, build_graph
from vnet.topology.lab import Lab
from vnet.topology.lookup import require_interface, require_node
from vnet.topology.model import NetnsNode, VmNode
from vnet.topology.names import LAB_NAME
from vnet.verification.guests import guest_agent
from vnet.verification.prove import ProbeOutcome, VerifyReport, prove
from vnet.verification.trace import Probe as TraceProbe
from vnet.verification.trace import Trace, mtu_culprit, pick_address
from vnet.verification.trace import trace as trace_path
from vnet.vm.agent import GuestResult

__all__ = ["ApplyReport", "CollisionError", "DestroyReport", "apply", "desired_state", "destroy",
           "guest_exec",
           "labs", "node_kind", "node_namespace", "plan", "status", "trace", "verify"]


class CollisionError(UnavailableError):
    """A name the lab needs is held by something vnet does not own; nothing was changed."""


@dataclass(frozen=True)
class ApplyReport:
    plan: Plan
    seconds: float
    notices: tuple[str, ...] = field(default=())


def _check_collisions(observed: ObservedState) -> None:
    what = {"": "device", "ovs": "OVS bridge/port"}
    clashes = [f"{what.get(ns, 'device')} {name}: held by {who}"
               for (ns, name), who in sorted(observed.foreign_names.items())]
    clashes += [f"namespace {n}: held by {who}" for n, who in sorted(observed.foreign_namespaces.items())]
    if clashes:
        raise CollisionError(f"lab {observed.lab}: names are taken: " + "; ".join(clashes),
                             "rename the switch or node in the topology, or remove the other object "
                             "yourself; vnet never touches objects it does not own")


def desired_state(lab: Lab, session: Session | None = None) -> DesiredState:
    """Compile the lab for this host (probing what the compiler needs to know); what the host
    cannot do for it (a kernel feature, an SR-IOV PF) stops it here (exit 69)."""
    if session is None:
        with Session() as own:
            return stages.desired_state(lab, own)
    return stages.desired_state(lab, session)


def _observe(lab: Lab, session: Session) -> tuple[DesiredState, ObservedState]:
    netns.require_root()
    desired = stages.desired_state(lab, session)
    observed = stages.observed_state(lab.name, desired, session)
    _check_collisions(observed)
    return desired, observed


def _require_on_host(lab: Lab, desired: DesiredState, observed: ObservedState, verb: str) -> None:
    """A lab with nothing of it on the host was not applied (or was destroyed): verify and trace
    would only list every object as missing. That is the host's state, the same exit 69 that
    `exec` gives a node without its namespace; a lab partly there is drift, reported as such."""
    if desired.resources and not observed.resources:
        raise NotOnHostError(f"lab {lab.name} is not on this host: {verb} found nothing of it",
                             f"run `vnet apply {lab.file}` first")


def plan(lab: Lab, ovsdb: str | None = None) -> Plan:
    """What apply would change on this host (nothing is changed, no daemon is started)."""
    with Session(ovsdb or default_ovsdb()) as session:
        desired, observed = _observe(lab, session)
        notes = stages.notes(lab, desired, session)
        return replace(make_plan(desired, observed), notes=(*session.notices, *notes))


def apply(lab: Lab, *, wait: bool = False, ovsdb: str | None = None,
          progress: Callable[[Change, Failure | None], None] | None = None) -> ApplyReport:
    """Make the host match the lab; on failure roll back this apply's changes (ApplyError)."""
    netns.require_root()
    started = time.monotonic()
    with lab_lock(lab.name, wait), Session(ovsdb or default_ovsdb()) as session:
        desired = stages.desired_state(lab, session)
        for mechanism in MECHANISMS:
            mechanism.start(desired, session)
        observed = stages.observed_state(lab.name, desired, session)
        _check_collisions(observed)
        the_plan = make_plan(desired, observed)
        lab_dir(lab.name)
        apply_plan(the_plan, stages.Drivers(lab.name, session, desired), progress)
        return ApplyReport(the_plan, time.monotonic() - started, tuple(session.notices))


def verify(lab: Lab, timeout: float = 1.5, ovsdb: str | None = None) -> VerifyReport:
    """Re-observe (drift fails) and prove every row of the expectations from inside the nodes."""
    netns.require_root()
    graph = build_graph(lab)
    with Session(ovsdb or default_ovsdb()) as session:
        desired, observed = _observe(lab, session)
        _require_on_host(lab, desired, observed, "verify")
        drift = make_plan(desired, observed).changes
        # Probed with drift too: the report then says what the difference breaks.
        outcomes = [_name_the_hop(graph, desired, session, o) for o in prove(graph, timeout)]
        return VerifyReport(lab.name, tuple(drift), tuple(outcomes))


def _name_the_hop(graph: LabGraph, desired: DesiredState, session: Session,
                  outcome: ProbeOutcome) -> ProbeOutcome:
    """A don't-fragment probe lost without an ICMP error: the device whose MTU is too small."""
    probe = outcome.probe
    if outcome.ok or probe.size is None or not probe.reach or "says" in outcome.hint:
        return outcome
    culprit = mtu_culprit(graph, desired, session.host, probe.source, probe.address.ip, probe.size)
    return replace(outcome, hint=culprit) if culprit else outcome


def trace(lab: Lab, source: str, target: str, ovsdb: str | None = None,
          proto: str = "icmp", port: int | None = None) -> Trace:
    """The path from `source` to `target` through the lab (routers included), checked against the
    host; `proto`/`port`: what the traced packet is (OpenFlow rules may treat protocols apart)."""
    _trace_ends(lab, source, target)  # a mistake in the arguments: exit 65 before root or host
    netns.require_root()
    with Session(ovsdb or default_ovsdb()) as session:
        desired, observed = _observe(lab, session)
        _require_on_host(lab, desired, observed, "trace")
        drift = make_plan(desired, observed).changes
        return trace_path(build_graph(lab), desired, session.host, session.ovsdb, source, target, drift,
                          TraceProbe(proto, port))


def _trace_ends(lab: Lab, source: str, target: str) -> None:
    """SOURCE is a node (the file's routes pick the interface it sends from); TARGET is a node or
    `node:iface`. A pair with no address to aim at is as much a mistake as an unknown name."""
    if ":" in source:
        node = source.partition(":")[0]
        require_node(lab, node)
        raise InputError(f"trace SOURCE `{source}` names an interface: give the node `{node}`",
                         "the interface a packet leaves by follows from the file's addresses and routes")
    require_node(lab, source)
    node, colon, iface = target.partition(":")
    if colon:
        require_interface(lab, node, iface)
    else:
        require_node(lab, node)
    pick_address(lab, source, target)


def destroy(lab_name: str, *, wait: bool = False, ovsdb: str | None = None) -> DestroyReport:
    """Remove everything the lab owns on this host; needs no topology file."""
    check_lab_name(lab_name)  # a bad name is a mistake in the arguments (65) for root or not
    netns.require_root()
    with lab_lock(lab_name, wait, remove=True), Session(ovsdb or default_ovsdb()) as session:
        return destroy_lab(lab_name, session)


def labs(ovsdb: str | None = None) -> list[str]:
    """Labs with objects on this host."""
    netns.require_root()  # without root the namespaces' marks are unreadable: `destroy --all` found none
    with Session(ovsdb or default_ovsdb()) as session:
        found = {name for mechanism in MECHANISMS for name in mechanism.labs(session)}
        return sorted(name for name in found if LAB_NAME.match(name))  # marks are anyone's text


def status(lab: Lab | None = None, lab_name: str | None = None,
           ovsdb: str | None = None) -> list[dict[str, Any]]:
    """Per lab on this host: its objects by kind, and (for `lab`) the pending changes (drift)."""
    if lab_name is not None:
        check_lab_name(lab_name)  # `--lab ../x` or `--lab ''`: exit 65, as destroy says it
    netns.require_root()
    names = [lab.name] if lab is not None else ([lab_name] if lab_name is not None else labs(ovsdb))
    rows = []
    with Session(ovsdb or default_ovsdb()) as session:
        for name in names:
            desired = stages.desired_state(lab, session) if lab is not None else None
            observed = stages.observed_state(name, desired, session)
            counts: dict[str, int] = {}
            for key in observed.resources:
                kind = "device" if key[0] == "stray" else key[0]  # unpaired without the file
                counts[kind] = counts.get(kind, 0) + 1
            drift = None
            if desired is not None:
                drift = [c.to_json() for c in make_plan(desired, observed).changes]
            rows.append({"lab": name, "objects": counts, "drift": drift})
    return rows


def node_kind(lab: Lab, node: str) -> str:
    """`netns`, `vm` or `tap`; InputError (exit 65) when the lab has no such node."""
    return require_node(lab, node).kind


def node_namespace(lab: Lab, node: str) -> str:
    """The namespace of a netns node, for `exec`; the node's kind is in the file, so asking a
    tap node for one is a mistake in the arguments (exit 65), not a state of the host."""
    found = require_node(lab, node)
    if not isinstance(found, NetnsNode):
        raise InputError(f"`{node}` is a {found.kind} node: it has no namespace to run a command in",
                         "`vnet exec` runs in netns nodes and in VMs vnet starts; a tap node's guest "
                         "is started elsewhere, so reach it the way it was started")
    return netns_name(lab.name, node)


def guest_exec(lab: Lab, node: str, argv: list[str], timeout: float = 60.0) -> GuestResult:
    """Run a command inside a VM through its guest agent; its exit status and output."""
    found = require_node(lab, node)
    if not isinstance(found, VmNode):
        raise InputError(f"`{node}` is a {found.kind} node, not a VM: it has no guest agent",
                         "run commands in a netns node with `vnet exec` (it enters the namespace)")
    netns.require_root()
    if not any(vm.node == node for vm in qemu.running_vms(lab.name)):
        raise NotOnHostError(f"VM {node} of lab {lab.name} is not running",
                             f"run `vnet apply {lab.file}` first")
    with guest_agent(lab, node) as agent:
        return agent.run(argv, timeout)

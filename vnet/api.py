"""The verbs, as a Python API: load → plan → apply → verify → destroy (design.md §1).

    import vnet
    lab = vnet.load("lab.yaml")
    print(vnet.plan(lab).to_json())
    vnet.apply(lab)
    assert vnet.verify(lab).ok
    vnet.destroy(lab.name)

`ovsdb` arguments name the OVSDB to use (default: $VNET_OVSDB, else the system socket).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from vnet.compile import HostFacts, VmFacts, compile_lab, netns_name
from vnet.drivers import netns
from vnet.errors import UnavailableError
from vnet.host import features
from vnet.reconcile import session as sessions
from vnet.reconcile import sriov_steps
from vnet.reconcile.apply import apply_plan
from vnet.reconcile.destroy import DestroyReport, destroy_lab, labs_on_host
from vnet.reconcile.lock import lab_dir, lab_lock
from vnet.reconcile.plan import Action, Change, Plan, make_plan
from vnet.reconcile.session import Session, default_ovsdb
from vnet.resources import DesiredState, ObservedState, OvsBridge, Vm
from vnet.topology.graph import LabGraph, build_graph
from vnet.topology.lab import Lab
from vnet.topology.model import VmNode
from vnet.topology.names import LAB_NAME
from vnet.verification.guests import guest_agent
from vnet.verification.prove import ProbeOutcome, VerifyReport, prove
from vnet.verification.trace import Probe as TraceProbe
from vnet.verification.trace import Trace, mtu_culprit
from vnet.verification.trace import trace as trace_path
from vnet.vm import qemu
from vnet.vm import tiny as tiny_image
from vnet.vm.agent import GuestResult


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


def _vm_facts(lab: Lab) -> VmFacts | None:
    """QEMU, KVM and the tiny image (built into its cache when missing), for labs with VMs."""
    vms = [n for n in lab.topology.nodes.values() if isinstance(n, VmNode)]
    if not vms:
        return None
    tiny = tiny_image.ensure_tiny() if any(n.image == "tiny" for n in vms) else None
    return VmFacts(qemu.qemu_binary(), qemu.kvm_usable(), os.path.exists("/dev/vhost-net"),
                   str(tiny.kernel) if tiny else "", str(tiny.initrd) if tiny else "")


def desired_state(lab: Lab, session: Session | None = None) -> DesiredState:
    """Compile the lab for this host (probing what the compiler needs to know). A lab with an
    `sriov` section is checked against its PFs here: what they cannot do stops it (exit 69)."""
    has_auto_ovs = any(getattr(s, "datapath", None) == "auto" for s in lab.topology.switches.values())
    pfs, vfio_pci = sriov_steps.facts(lab, session.sriov if session else sessions.SRIOV_HOST_FACTORY)
    facts = HostFacts(ovs_kernel_datapath=has_auto_ovs and features.ovs_kernel_datapath(),
                      vm=_vm_facts(lab), sriov=pfs, vfio_pci=vfio_pci)
    desired = compile_lab(lab, facts)
    features.require(desired)
    return desired


def _observe(lab: Lab, session: Session, start_ovs: bool) -> tuple[DesiredState, ObservedState]:
    netns.require_root()
    desired = desired_state(lab, session)
    observed = session.observe(lab.name, desired, start_ovs)
    _check_collisions(observed)
    return desired, observed


def _notes(lab: Lab, desired: DesiredState, session: Session) -> tuple[str, ...]:
    notes = list(session.notices)
    for name, switch in sorted(lab.topology.switches.items()):
        bridge = desired.resources.get(("ovs-bridge", name))
        if isinstance(bridge, OvsBridge) and getattr(switch, "datapath", None) == "auto":
            why = ("the kernel datapath is available" if bridge.datapath == "system"
                   else "no kernel OVS datapath here: userspace")
            notes.append(f"OVS bridge {name}: datapath {bridge.datapath} ({why})")
    kvm = desired_kvm(desired)
    for name, node in sorted(lab.topology.nodes.items()):
        if isinstance(node, VmNode):
            notes.append(f"VM {name}: {qemu.choose_accel(node.accel, kvm)[1]}")
    return (*notes, *sriov_steps.notes(lab, desired))


def desired_kvm(desired: DesiredState) -> bool:
    return any(isinstance(r, Vm) and "kvm" in r.argv for r in desired.resources.values())


def plan(lab: Lab, ovsdb: str | None = None) -> Plan:
    """What apply would change on this host (nothing is changed, no daemon is started)."""
    with Session(ovsdb or default_ovsdb()) as session:
        desired, observed = _observe(lab, session, start_ovs=False)
        return replace(make_plan(desired, observed), notes=_notes(lab, desired, session))


def apply(lab: Lab, *, wait: bool = False, ovsdb: str | None = None,
          progress: Callable[[Change, str | None], None] | None = None) -> ApplyReport:
    """Make the host match the lab; on failure roll back this apply's changes (ApplyError)."""
    netns.require_root()
    started = time.monotonic()
    with lab_lock(lab.name, wait), Session(ovsdb or default_ovsdb()) as session:
        the_plan = make_plan(*_observe(lab, session, start_ovs=True))
        lab_dir(lab.name)
        apply_plan(the_plan, session.drivers(lab.name), progress)
        return ApplyReport(the_plan, time.monotonic() - started, tuple(session.notices))


def verify(lab: Lab, timeout: float = 1.5, ovsdb: str | None = None) -> VerifyReport:
    """Re-observe (drift fails) and prove every row of the expectations from inside the nodes."""
    netns.require_root()
    graph = build_graph(lab)
    with Session(ovsdb or default_ovsdb()) as session:
        desired, observed = _observe(lab, session, start_ovs=False)
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
    netns.require_root()
    for node in (source, target.partition(":")[0]):
        if node not in lab.topology.nodes:
            raise UnavailableError(f"`{node}` is not a node of lab {lab.name}",
                                   f"nodes: {', '.join(sorted(lab.topology.nodes))}")
    with Session(ovsdb or default_ovsdb()) as session:
        desired, observed = _observe(lab, session, start_ovs=False)
        drift = make_plan(desired, observed).changes
        return trace_path(build_graph(lab), desired, session.host, session.ovsdb, source, target, drift,
                          TraceProbe(proto, port))


def _destroy_ovs(lab_name: str, session: Session) -> int:
    client = session.ovs_client(start=False)
    if client is None:
        return 0
    found = session.observe(lab_name, None).resources
    changes = [Change(Action.DELETE, key, None, r, "destroy") for key, r in found.items()
               if key[0] in ("ovs-bridge", "ovs-port")]
    if changes:
        errors = [e for e in session.drivers(lab_name)["ovs-bridge"].execute(changes) if e]
        if errors:
            raise UnavailableError(f"lab {lab_name}: could not remove its OVS rows: {errors[0]}")
    return sum(isinstance(c.resource, OvsBridge) for c in changes)


def destroy(lab_name: str, *, wait: bool = False, ovsdb: str | None = None) -> DestroyReport:
    """Remove everything the lab owns on this host; needs no topology file."""
    netns.require_root()
    with lab_lock(lab_name, wait, remove=True), Session(ovsdb or default_ovsdb()) as session:
        qemu.stop_lab(lab_name)  # guests first: they hold the lab's TAPs open (and VFs through vfio)
        bridges = _destroy_ovs(lab_name, session)
        problems = sriov_steps.destroy_sriov(lab_name, session)  # VF netdevs leave the namespaces first
        report = destroy_lab(lab_name, session.host)
        sriov_steps.raise_problems(lab_name, problems, session.sriov())
        return DestroyReport(report.lab, report.namespaces, report.devices, report.seconds, bridges)


def labs(ovsdb: str | None = None) -> list[str]:
    """Labs with objects on this host."""
    netns.require_root()  # without root the namespaces' marks are unreadable: `destroy --all` found none
    with Session(ovsdb or default_ovsdb()) as session:
        found = set(labs_on_host(session.host)) | qemu.labs_with_vms() | set(session.sriov().state.labs())
        client = session.ovs_client(start=False)
        if client is not None:
            found |= {row.external_ids["vnet-lab"] for row in client.rows("Bridge")
                      if "vnet-lab" in row.external_ids}
        return sorted(name for name in found if LAB_NAME.match(name))  # marks are anyone's text


def status(lab: Lab | None = None, lab_name: str | None = None,
           ovsdb: str | None = None) -> list[dict[str, Any]]:
    """Per lab on this host: its objects by kind, and (for `lab`) the pending changes (drift)."""
    netns.require_root()
    names = [lab.name] if lab is not None else ([lab_name] if lab_name else labs(ovsdb))
    rows = []
    with Session(ovsdb or default_ovsdb()) as session:
        for name in names:
            desired = desired_state(lab, session) if lab is not None else None
            observed = session.observe(name, desired)
            counts: dict[str, int] = {}
            for key in observed.resources:
                kind = "device" if key[0] == "stray" else key[0]  # unpaired without the file
                counts[kind] = counts.get(kind, 0) + 1
            drift = None
            if desired is not None:
                drift = [c.to_json() for c in make_plan(desired, observed).changes]
            rows.append({"lab": name, "objects": counts, "drift": drift})
    return rows


def node_namespace(lab: Lab, node: str) -> str:
    """The namespace of a netns node, for `exec`."""
    kind = lab.topology.nodes[node].kind
    if kind != "netns":
        raise UnavailableError(f"`{node}` is a {kind} node: it has no namespace")
    return netns_name(lab.name, node)


def guest_exec(lab: Lab, node: str, argv: list[str], timeout: float = 60.0) -> GuestResult:
    """Run a command inside a VM through its guest agent; its exit status and output."""
    netns.require_root()
    if not any(vm.node == node for vm in qemu.running_vms(lab.name)):
        raise UnavailableError(f"VM {node} of lab {lab.name} is not running",
                               f"run `vnet apply {lab.file}` first")
    with guest_agent(lab, node) as agent:
        return agent.run(argv, timeout)

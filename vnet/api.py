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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, BinaryIO

from vnet.errors import InputError, NotOnHostError, UnavailableError
from vnet.host import netns, procs
from vnet.interrupt import Interrupt
from vnet.marks import netns_name
from vnet.mechanisms import MECHANISMS
from vnet.mechanisms.qemu import process as qemu
from vnet.pipeline import inventory, stages
from vnet.pipeline.destroy import DestroyReport, destroy_lab
from vnet.pipeline.execute import ApplyInterrupted, apply_plan
from vnet.pipeline.lock import check_lab_name, lab_dir, lab_lock
from vnet.pipeline.plan import make_plan
from vnet.pipeline.session import Session, default_ovsdb
from vnet.progress import LockWaited, Progress, ignore
from vnet.resources import DesiredState, ObservedState, Plan
from vnet.topology.lab import Lab
from vnet.topology.lookup import require_interface, require_node
from vnet.topology.model import NetnsNode, VmNode
from vnet.topology.names import LAB_NAME

# verify, trace and guest_exec import what they use (networkx, the probes, the guest agents) when
# called: plan, apply and destroy do without them, a no-op `vnet plan` ~0.15 s sooner.
if TYPE_CHECKING:
    from vnet.capture.session import OnPacket, Summary, Target
    from vnet.topology.graph import LabGraph
    from vnet.verification.prove import ProbeOutcome, VerifyReport
    from vnet.verification.trace import Trace
    from vnet.vm.agent import GuestResult

__all__ = ["ApplyReport", "CollisionError", "DestroyReport", "apply", "capture", "capture_targets",
           "desired_state", "destroy",
           "guest_exec",
           "labs", "node_kind", "node_namespace", "plan", "running_vm", "serial_console", "serial_log",
           "status", "trace", "verify"]


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


def apply(lab: Lab, *, wait: bool = False, ovsdb: str | None = None, progress: Progress = ignore,
          interrupt: Interrupt | None = None) -> ApplyReport:
    """Make the host match the lab; on failure roll back this apply's changes (ApplyError).

    `progress` gets the events of vnet/progress.py (waves, changes, guests booting, rollback).
    `interrupt`: call its `press()` from a SIGINT handler (nothing else there) to stop at the
    next safe point and roll back (ApplyInterrupted, exit 130); a second press stops the
    rollback and the error lists what is left."""
    netns.require_root()
    started = time.monotonic()
    interrupt = interrupt if interrupt is not None else Interrupt()
    with (lab_lock(lab.name, wait, waiting=lambda: progress(LockWaited(lab.name))),
          Session(ovsdb or default_ovsdb(), progress=progress, interrupt=interrupt) as session):
        desired = stages.desired_state(lab, session)
        for mechanism in MECHANISMS:
            mechanism.start(desired, session)
        observed = stages.observed_state(lab.name, desired, session)
        _check_collisions(observed)
        the_plan = make_plan(desired, observed)
        lab_dir(lab.name)
        try:
            apply_plan(the_plan, stages.Drivers(lab.name, session, desired), progress, interrupt)
        except ApplyInterrupted as stopped:
            raise stopped.about(lab.file) from None
        return ApplyReport(the_plan, time.monotonic() - started, tuple(session.notices))


def verify(lab: Lab, timeout: float = 1.5, ovsdb: str | None = None,
           progress: Progress = ignore) -> VerifyReport:
    """Re-observe (drift fails) and prove every row of the expectations from inside the nodes;
    `progress` gets ProbesAnswered events (vnet/progress.py)."""
    from vnet.topology.graph import build_graph  # noqa: PLC0415 (see TYPE_CHECKING above)
    from vnet.verification.prove import VerifyReport, prove  # noqa: PLC0415

    netns.require_root()
    graph = build_graph(lab)
    with Session(ovsdb or default_ovsdb()) as session:
        desired, observed = _observe(lab, session)
        _require_on_host(lab, desired, observed, "verify")
        drift = make_plan(desired, observed).changes
        # Probed with drift too: the report then says what the difference breaks.
        outcomes = [_name_the_hop(graph, desired, session, o) for o in prove(graph, timeout, progress)]
        return VerifyReport(lab.name, tuple(drift), tuple(outcomes))


def _name_the_hop(graph: LabGraph, desired: DesiredState, session: Session,
                  outcome: ProbeOutcome) -> ProbeOutcome:
    """A don't-fragment probe lost without an ICMP error: the device whose MTU is too small."""
    probe = outcome.probe
    if outcome.ok or probe.size is None or not probe.reach or "says" in outcome.hint:
        return outcome
    from vnet.verification.trace import mtu_culprit  # noqa: PLC0415 (see TYPE_CHECKING above)

    culprit = mtu_culprit(graph, desired, session.host, probe.source, probe.address.ip, probe.size)
    return replace(outcome, hint=culprit) if culprit else outcome


def trace(lab: Lab, source: str, target: str, ovsdb: str | None = None,
          proto: str = "icmp", port: int | None = None) -> Trace:
    """The path from `source` to `target` through the lab (routers included), checked against the
    host; `proto`/`port`: what the traced packet is (OpenFlow rules may treat protocols apart)."""
    from vnet.topology.graph import build_graph  # noqa: PLC0415 (see TYPE_CHECKING above)
    from vnet.verification.trace import Probe as TraceProbe  # noqa: PLC0415
    from vnet.verification.trace import trace as trace_path  # noqa: PLC0415

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
    from vnet.verification.trace import pick_address  # noqa: PLC0415 (see TYPE_CHECKING above)

    pick_address(lab, source, target)


class HeldError(UnavailableError):
    """Processes vnet did not start hold objects of the lab (guests on its TAPs); `force` cuts
    them off."""


def _refuse_held(lab_name: str, session: Session) -> None:
    observed = stages.observed_state(lab_name, None, session)
    ours = {vm.pid for vm in qemu.running_vms(lab_name)}  # destroy stops its own guests first
    held = {pid: what for mechanism in MECHANISMS
            for pid, what in mechanism.holders(observed).items() if pid not in ours}
    if held:
        who = "; ".join(f"pid {pid} ({procs.command_name(pid)}) holds {', '.join(what)}"
                        for pid, what in sorted(held.items()))
        raise HeldError(f"lab {lab_name}: running processes use its objects: {who}",
                        "stop those guests first, or destroy with --force (they lose their network)")


def destroy(lab_name: str, *, wait: bool = False, ovsdb: str | None = None,
            force: bool = False, progress: Progress = ignore) -> DestroyReport:
    """Remove everything the lab owns on this host; needs no topology file. Refuses (HeldError,
    exit 69) while processes vnet did not start hold its objects, unless `force`."""
    check_lab_name(lab_name)  # a bad name is a mistake in the arguments (65) for root or not
    netns.require_root()
    with (lab_lock(lab_name, wait, remove=True, waiting=lambda: progress(LockWaited(lab_name))),
          Session(ovsdb or default_ovsdb()) as session):
        if not force:
            _refuse_held(lab_name, session)
        return destroy_lab(lab_name, session)


def labs(ovsdb: str | None = None) -> list[str]:
    """Labs with objects on this host."""
    netns.require_root()  # without root the namespaces' marks are unreadable: `destroy --all` found none
    with Session(ovsdb or default_ovsdb()) as session:
        found = {name for mechanism in MECHANISMS for name in mechanism.labs(session)}
        return sorted(name for name in found if LAB_NAME.match(name))  # marks are anyone's text


def status(lab: Lab | None = None, lab_name: str | None = None,
           ovsdb: str | None = None) -> list[dict[str, Any]]:
    """Per lab on this host: its objects by kind, its nodes (devices, MACs, addresses, OVS
    ports, guests), and (for `lab`) the pending changes (drift). `lab_name` of a lab with
    nothing on this host: NotOnHostError (exit 69)."""
    if lab_name is not None:
        check_lab_name(lab_name)  # `--lab ../x` or `--lab ''`: exit 65, as destroy says it
    netns.require_root()
    names = [lab.name] if lab is not None else ([lab_name] if lab_name is not None else labs(ovsdb))
    kinds = {name: node.kind for name, node in lab.topology.nodes.items()} if lab is not None else None
    rows = []
    with Session(ovsdb or default_ovsdb()) as session:
        for name in names:
            desired = stages.desired_state(lab, session) if lab is not None else None
            observed = stages.observed_state(name, desired, session)
            if lab_name is not None and not observed.resources:
                present = labs(ovsdb)
                here = f"labs here: {', '.join(present)}" if present else "no vnet labs are here"
                raise NotOnHostError(f"no lab {lab_name} on this host", here)
            counts: dict[str, int] = {}
            for key in observed.resources:
                kind = "device" if key[0] == "stray" else key[0]  # unpaired without the file
                counts[kind] = counts.get(kind, 0) + 1
            drift = None
            if desired is not None:
                drift = [c.to_json() for c in make_plan(desired, observed).changes]
            found = inventory.nodes(name, observed.resources, kinds)
            rows.append({"lab": name, "objects": counts, "drift": drift,
                         "nodes": [n.to_json() for n in found]})
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


def running_vm(lab: Lab, node: str, what: str = "guest agent", hint: str | None = None) -> qemu.RunningVm:
    """The QEMU process of VM `node` on this host. InputError (exit 65) when the lab has no such
    node or it is no VM (so it has no `what`), NotPermittedError (77) without root, NotOnHostError
    (69) when the VM is not running."""
    found = require_node(lab, node)
    if not isinstance(found, VmNode):
        if hint is None:
            hint = (f"a netns node runs on this host: `vnet exec {lab.file} {node} -- sh` is a shell in it"
                    if isinstance(found, NetnsNode) else
                    "a tap node's guest is started elsewhere: reach it the way it was started")
        raise InputError(f"`{node}` is a {found.kind} node, not a VM: it has no {what}", hint)
    netns.require_root()
    for vm in qemu.running_vms(lab.name):
        if vm.node == node:
            return vm
    raise NotOnHostError(f"VM {node} of lab {lab.name} is not running", f"run `vnet apply {lab.file}` first")


EXEC_GRACE = 5.0  # s beyond an exec's timeout for the agent's answer (the guest kills at it)


def guest_exec(lab: Lab, node: str, argv: list[str], timeout: float = 60.0,
               stdin: bytes | None = None) -> GuestResult:
    """Run a command inside a VM through its guest agent, `stdin` its standard input (else none;
    at most vnet.vm.agent.MAX_INPUT bytes, InputError beyond); its exit status and output. The
    tiny guest kills it after `timeout` s (status 137); with qemu-guest-agent, which cannot,
    vnet stops waiting (AgentError, exit 69) and it may still run."""
    running_vm(lab, node, hint="run commands in a netns node with `vnet exec` (it enters the namespace)")
    from vnet.verification.guests import guest_agent  # noqa: PLC0415 (see TYPE_CHECKING above)
    from vnet.vm.agent import MAX_INPUT  # noqa: PLC0415 (as guest_agent)

    if stdin is not None and len(stdin) > MAX_INPUT:
        raise InputError(f"standard input for {node} is larger than the guest agent takes "
                         f"({MAX_INPUT >> 20} MiB): it is sent whole before the command starts",
                         "copy large data over the lab's network (e.g. nc), or put it in the image")
    with guest_agent(lab, node) as agent:
        # at once for a booted guest; a disk image may still boot. And a request is sent only to
        # an agent that answers: one lost (to a client that left in the middle of its input) is
        # a ping, which is repeated.
        agent.wait_ready(qemu.BOOT_TIMEOUT)
        return agent.run(argv, timeout, stdin, EXEC_GRACE)


def serial_console(lab: Lab, node: str) -> qemu.VmPaths:
    """The files of running VM `node`, whose `console` is its serial console's socket (errors as
    running_vm's)."""
    running_vm(lab, node, "serial console")
    return qemu.vm_paths(lab.name, node)


def serial_log(lab: Lab, node: str) -> tuple[qemu.VmPaths, qemu.RunningVm | None]:
    """The files of VM `node`, whose `serial` is its serial log, and its QEMU process: None when
    the VM is not running but left its log (its QEMU ended by itself, or crashed: the run
    directory stays until the next apply or destroy). NotOnHostError (69) when there is no log."""
    try:
        return qemu.vm_paths(lab.name, node), running_vm(lab, node, "serial log")
    except NotOnHostError:
        paths = qemu.vm_paths(lab.name, node)
        if paths.serial.is_file():
            return paths, None
        raise


def capture_targets(lab: Lab, targets: Sequence[str], both: bool = False) -> tuple[Target, ...]:
    """The devices `capture` would capture for `targets` (`node:iface`; with `both`, also the
    other end of each veth). InputError (exit 65) for a name the file lacks or an interface with
    no such device, NotPermittedError (77) without root, NotOnHostError (69) when the lab, the
    node's namespace or the device is not on this host."""
    from vnet.capture import session  # noqa: PLC0415 (only for a capture)

    found = session.resolve(lab, targets, both)
    session.require_on_host(lab, found)
    return found


def capture(lab: Lab, targets: Sequence[str] | tuple[Target, ...], output: BinaryIO | None = None, *,
            both: bool = False,
            count: int | None = None, duration: float | None = None, on_packet: OnPacket | None = None,
            flush: bool = False, interrupt: Interrupt | None = None,
            ready: Callable[[tuple[Target, ...]], None] | None = None) -> Summary:
    """Capture packets on the lab's interfaces `targets` (`node:iface`, or what capture_targets
    returned for them: not resolved again) with AF_PACKET sockets, no tcpdump: into `output`
    as pcapng (one interface per device, ns timestamps, each packet's direction, the kernel's
    counters at the end) and/or to `on_packet(target, packet)`. Ends after `count` packets in
    all, `duration` seconds, or when `interrupt` is pressed (from a SIGINT handler); `output`
    is complete in every case. `flush`: flush after every packet (a pipe to Wireshark).
    `ready` is called once the sockets listen. Returns the packet count, interfaces and kernel
    drops."""
    from vnet.capture import session  # noqa: PLC0415 (only for a capture)
    from vnet.capture.pcapng import Writer  # noqa: PLC0415

    names = [t for t in targets if isinstance(t, str)]
    found = capture_targets(lab, names, both) if names else tuple(t for t in targets
                                                                   if not isinstance(t, str))
    stop = interrupt if interrupt is not None else Interrupt()
    writer = Writer(output, flush=flush) if output is not None else None
    return session.capture(found, writer, on_packet, session.Limits(count, duration),
                           lambda: stop.interrupted, ready=None if ready is None else lambda: ready(found))

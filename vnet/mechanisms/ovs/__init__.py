"""The Open vSwitch mechanism: bridges and ports in OVSDB (one ovsdbapp transaction per wave),
OpenFlow flows as drift, and `attach: internal` devices (their kernel side: internal.py).

The OVSDB is `ctx.ovsdb` (--ovsdb, $VNET_OVSDB, else the system socket). When nothing answers
there, the lab's OVS objects are shown as missing; apply (`start`) starts the distribution's
ovs-vswitchd and ovsdb-server for the system socket, and refuses for any other.
"""

from __future__ import annotations

from vnet.errors import UnavailableError
from vnet.host import features, ovs_daemon
from vnet.mechanisms.base import CONTRIBUTIONS, BaseMechanism, Context, Observation
from vnet.mechanisms.kernel.observe import CLAIMS, lab_scan
from vnet.mechanisms.ovs import compile as ovs_compile
from vnet.mechanisms.ovs import internal  # noqa: F401  (registers the kernel handlers)
from vnet.mechanisms.ovs import observe as ovs_observe
from vnet.mechanisms.ovs.client import LAB_KEY, OvsdbClient
from vnet.mechanisms.ovs.resources import OvsBridge, OvsPort
from vnet.resources import DesiredState, Driver, ObservedState
from vnet.topology.lab import Lab
from vnet.topology.model import OvsSwitch

CONTRIBUTIONS.switches["ovs"] = ovs_compile.ovs_switch
CONTRIBUTIONS.links.update({
    frozenset({"node", "ovs"}): ovs_compile.node_to_ovs,
    frozenset({"ovs"}): ovs_compile.ovs_to_ovs,
    frozenset({"ovs", "linux"}): ovs_compile.ovs_to_linux,
    frozenset({"ovs", "tunnel"}): ovs_compile.ovs_to_tunnel,
})
CLAIMS.append(ovs_observe.claims_internal_device)
SYSTEM_OVSDB = ovs_daemon.OvsPaths.system().remote


def answering(ctx: Context) -> bool:
    return not ctx.ovsdb.startswith("unix:") or ovs_daemon.answering(ctx.ovsdb.removeprefix("unix:"))


def client(ctx: Context) -> OvsdbClient | None:
    """The session's OVSDB client; None when nothing answers (no daemon is started here)."""
    if not answering(ctx):
        return None
    return ctx.connection("ovsdb", lambda: OvsdbClient(ctx.ovsdb))


def _wants_ovs(desired: DesiredState) -> bool:
    return any(isinstance(r, OvsBridge) for r in desired.resources.values())


class OvsMechanism(BaseMechanism):
    name = "ovs"
    kinds = frozenset({OvsBridge.kind, OvsPort.kind})

    def probe(self, lab: Lab, ctx: Context) -> object | None:
        auto = any(isinstance(s, OvsSwitch) and s.datapath == "auto" for s in lab.topology.switches.values())
        return ovs_compile.OvsFacts(auto and features.ovs_kernel_datapath())

    def start(self, desired: DesiredState, ctx: Context) -> None:
        if not _wants_ovs(desired) or answering(ctx):
            return
        if ctx.ovsdb != SYSTEM_OVSDB:
            raise UnavailableError(f"no OVSDB answers at {ctx.ovsdb}",
                                   "start that ovsdb-server, or drop --ovsdb to use the system one")
        ovs_daemon.ensure_running(ovs_daemon.OvsPaths.system())
        ctx.notices.append("started Open vSwitch (ovsdb-server, ovs-vswitchd) from the "
                           "distribution's binaries; `vnet ovs stop` stops them")

    def observe(self, lab: str, ctx: Context) -> Observation:
        found = client(ctx)
        if found is None:
            return Observation()
        return ovs_observe.observe(lab, found, lab_scan(lab, ctx))

    def match(self, desired: DesiredState | None, observed: ObservedState, own: Observation) -> None:
        if own.raw is not None:
            ovs_observe.match(desired, observed, own)

    def driver(self, lab: str, ctx: Context, desired: DesiredState | None) -> Driver:
        found = client(ctx)
        if found is None:
            raise UnavailableError(f"no OVSDB answers at {ctx.ovsdb}",
                                   "start Open vSwitch (`vnet ovs start`)")
        wanted = desired.resources.values() if desired is not None else ()
        bridges = {r.name for r in wanted if isinstance(r, OvsBridge)}
        from vnet.mechanisms.ovs.driver import OvsDriver  # noqa: PLC0415 (ovsdbapp: only to write)

        return OvsDriver(lab, found, bridges)

    def notes(self, lab: Lab, desired: DesiredState, ctx: Context) -> list[str]:
        notes = []
        if _wants_ovs(desired) and not answering(ctx):
            notes.append(f"no OVSDB answers at {ctx.ovsdb}: OVS objects are shown as missing; "
                         "apply starts Open vSwitch")
        for name, switch in sorted(lab.topology.switches.items()):
            bridge = desired.resources.get(OvsBridge.key_of(name))
            if isinstance(bridge, OvsBridge) and isinstance(switch, OvsSwitch) and switch.datapath == "auto":
                why = ("the kernel datapath is available" if bridge.datapath == "system"
                       else "no kernel OVS datapath here: userspace")
                notes.append(f"OVS bridge {name}: datapath {bridge.datapath} ({why})")
        return notes

    def labs(self, ctx: Context) -> set[str]:
        found = client(ctx)
        if found is None:
            return set()
        return {row.external_ids[LAB_KEY] for row in found.rows("Bridge") if LAB_KEY in row.external_ids}


MECHANISM = OvsMechanism()

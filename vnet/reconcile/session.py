"""The connections one vnet command uses: the kernel always, OVSDB when a lab has OVS objects.

Also where observation of all mechanisms is merged, and where the managed OVS daemons are
started when a lab needs OVS and nothing answers on the default socket.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from vnet.drivers.host import KernelHost
from vnet.drivers.kernel import KernelDriver
from vnet.drivers.ovs import OvsdbClient, OvsDriver
from vnet.drivers.qemu import VmDriver
from vnet.errors import UnavailableError
from vnet.host import ovs_daemon
from vnet.reconcile.apply import Driver
from vnet.reconcile.observe import observe
from vnet.reconcile.observe_ovs import observe_ovs
from vnet.reconcile.observe_vm import observe_vms
from vnet.resources import DesiredState, ObservedState, OvsBridge

SYSTEM_OVSDB = ovs_daemon.OvsPaths.system().remote


def default_ovsdb() -> str:
    return os.environ.get("VNET_OVSDB") or SYSTEM_OVSDB


def needs_ovs(desired: DesiredState) -> bool:
    return any(isinstance(r, OvsBridge) for r in desired.resources.values())


@dataclass
class Session:
    ovsdb: str = field(default_factory=default_ovsdb)
    host: KernelHost = field(default_factory=KernelHost)
    ovs: OvsdbClient | None = None
    notices: list[str] = field(default_factory=list)

    def ovs_client(self, start: bool) -> OvsdbClient | None:
        """The OVSDB connection; None when nothing answers and `start` is False."""
        if self.ovs is not None:
            return self.ovs
        socket_path = self.ovsdb.removeprefix("unix:")
        if self.ovsdb.startswith("unix:") and not ovs_daemon.answering(socket_path):
            if not start:
                return None
            if self.ovsdb != SYSTEM_OVSDB:
                raise UnavailableError(f"no OVSDB answers at {self.ovsdb}",
                                       "start that ovsdb-server, or drop --ovsdb to use the system one")
            ovs_daemon.ensure_running(ovs_daemon.OvsPaths.system())
            self.notices.append("started Open vSwitch (ovsdb-server, ovs-vswitchd) from the "
                                "distribution's binaries; `vnet ovs stop` stops them")
        self.ovs = OvsdbClient(self.ovsdb)
        return self.ovs

    def observe(self, lab: str, desired: DesiredState | None, start_ovs: bool = False) -> ObservedState:
        """Kernel and OVS objects of the lab, merged."""
        observed = observe(lab, desired, self.host)
        vms = observe_vms(lab, desired)
        if vms:
            observed = ObservedState(lab, {**observed.resources, **vms}, observed.foreign_names,
                                     observed.foreign_namespaces)
        wants_ovs = desired is not None and needs_ovs(desired)
        client = self.ovs_client(start_ovs) if wants_ovs or desired is None else None
        if client is None:
            if wants_ovs:
                self.notices.append(f"no OVSDB answers at {self.ovsdb}: OVS objects are shown as "
                                    "missing; apply starts Open vSwitch")
            return observed
        resources, foreign = observe_ovs(lab, desired, client, observed)
        return ObservedState(lab, {**observed.resources, **resources},
                             {**observed.foreign_names, **foreign}, observed.foreign_namespaces)

    def drivers(self, lab: str) -> dict[str, Driver]:
        kernel = KernelDriver(lab, self.host)
        drivers: dict[str, Driver] = {kind: kernel for kind in kernel.kinds}
        drivers["vm"] = VmDriver(lab)
        if self.ovs is not None:
            ovs = OvsDriver(lab, self.ovs)
            drivers.update({kind: ovs for kind in ovs.kinds})
        return drivers

    def close(self) -> None:
        self.host.close()
        if self.ovs is not None:
            self.ovs.close()
            self.ovs = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

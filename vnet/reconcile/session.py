"""The connections one vnet command uses: the kernel always, OVSDB when a lab has OVS objects.

Also where observation of all mechanisms is merged, and where the managed OVS daemons are
started when a lab needs OVS and nothing answers on the default socket. The SR-IOV layer is
made by SRIOV_HOST_FACTORY when a lab uses SR-IOV (or owns a PF): tests replace the factory
with one whose sysfs, VF netlink, devlink and clock are fakes; everything above runs unchanged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from vnet.drivers.host import KernelHost
from vnet.drivers.kernel import KernelDriver
from vnet.drivers.ovs import OvsdbClient, OvsDriver
from vnet.drivers.qemu import VmDriver
from vnet.drivers.sriov import SriovHost, Sysfs
from vnet.drivers.sriov.links import KernelVfLinks
from vnet.drivers.sriov.passthrough import resolve_host, symbolic_host
from vnet.drivers.sriov_driver import SriovDriver
from vnet.errors import UnavailableError
from vnet.host import ovs_daemon
from vnet.reconcile.apply import Driver
from vnet.reconcile.observe import observe
from vnet.reconcile.observe_ovs import observe_ovs
from vnet.reconcile.observe_sriov import merge, observe_sriov, uses_sriov
from vnet.reconcile.observe_vm import observe_vms
from vnet.resources import DesiredState, Netns, ObservedState, OvsBridge
from vnet.vm import qemu

SYSTEM_OVSDB = ovs_daemon.OvsPaths.system().remote
SRIOV_HOST_FACTORY: Callable[[], SriovHost] = SriovHost
Argv = tuple[str, ...]


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
    sriov_host: SriovHost | None = None
    sriov_used: bool = False  # the observed lab uses SR-IOV: its driver and VM argv mapping apply

    def sriov(self) -> SriovHost:
        if self.sriov_host is None:
            self.sriov_host = SRIOV_HOST_FACTORY()
        return self.sriov_host

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
        observed = self._observe_sriov(lab, desired, observe(lab, desired, self.host))
        vms = observe_vms(lab, desired, self._vm_argv(symbolic_host) if self.sriov_used else None)
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

    def _observe_sriov(self, lab: str, desired: DesiredState | None, kernel: ObservedState) -> ObservedState:
        if not uses_sriov(lab, desired, self.sriov()):
            return kernel
        self.sriov_used = True
        namespaces = [r.name for r in kernel.resources.values() if isinstance(r, Netns)]
        return merge(kernel, observe_sriov(lab, desired, self.sriov(), KernelVfLinks(self.host), namespaces))

    def _vm_argv(self, change: Callable[[Sysfs, str], str]) -> Callable[[Argv], Argv]:
        """Map the vfio-pci `host=` values of a QEMU command line (symbolic <-> PCI address)."""
        sysfs = self.sriov().sysfs
        return lambda argv: qemu.map_vfio_hosts(argv, lambda host: change(sysfs, host))

    def drivers(self, lab: str) -> dict[str, Driver]:
        kernel = KernelDriver(lab, self.host)
        drivers: dict[str, Driver] = {kind: kernel for kind in kernel.kinds}
        drivers["vm"] = VmDriver(lab, resolve=self._vm_argv(resolve_host) if self.sriov_used else None)
        if self.sriov_used:
            sriov = SriovDriver(lab, self.sriov(), KernelVfLinks(self.host))
            drivers.update({kind: sriov for kind in sriov.kinds})
        if self.ovs is not None:
            ovs = OvsDriver(lab, self.ovs)
            drivers.update({kind: ovs for kind in ovs.kinds})
        return drivers

    def close(self) -> None:
        self.host.close()
        if self.sriov_host is not None:
            for part in (self.sriov_host.netlink, self.sriov_host.devlink):
                with contextlib.suppress(Exception):
                    getattr(part, "close", lambda: None)()
        if self.ovs is not None:
            self.ovs.close()
            self.ovs = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

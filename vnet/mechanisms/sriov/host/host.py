"""SriovHost: the SR-IOV layer's one entry point for the rest of vnet (compile/observe/apply).

It holds the four things that touch the host: sysfs (under a configurable root), rtnetlink for
VF settings, devlink for the eswitch mode, and the clock for bounded waits; plus the store of
original PF states. Tests build it with fakes of sysfs, netlink and devlink; the methods below
run unchanged.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from vnet.errors import UnavailableError
from vnet.mechanisms.sriov.host import pf as pfs
from vnet.mechanisms.sriov.host import vfio
from vnet.mechanisms.sriov.host.devlink import Devlink, PyrouteDevlink
from vnet.mechanisms.sriov.host.errors import SriovError, SriovUnsupported, TooManyVfs, VfBusy
from vnet.mechanisms.sriov.host.netlink import PyrouteVfNetlink, VfConfig, VfNetlink
from vnet.mechanisms.sriov.host.settings import VfSettings, configure_vf
from vnet.mechanisms.sriov.host.state import PfOriginal, StateStore
from vnet.mechanisms.sriov.host.sysfs import Clock, Sysfs, SystemClock


@dataclass(frozen=True)
class PfState:
    """A PF as observed: sysfs facts, eswitch mode (None: no devlink eswitch), VFs, VF settings."""

    pf: pfs.Pf
    eswitch: str | None
    vfs: tuple[pfs.Vf, ...]
    configs: tuple[VfConfig, ...]

    def config(self, vf: int) -> VfConfig | None:
        return next((c for c in self.configs if c.vf == vf), None)


@dataclass(frozen=True)
class SriovHost:
    sysfs: Sysfs = field(default_factory=Sysfs)
    netlink: VfNetlink = field(default_factory=PyrouteVfNetlink)
    devlink: Devlink = field(default_factory=PyrouteDevlink)
    clock: Clock = field(default_factory=SystemClock)
    state: StateStore = field(default_factory=StateStore)

    def close(self) -> None:
        """Close the netlink and devlink sockets (fakes may have none)."""
        for part in (self.netlink, self.devlink):
            with contextlib.suppress(Exception):
                getattr(part, "close", lambda: None)()

    # --- observe ---------------------------------------------------------------------------------

    def pf(self, name: str) -> pfs.Pf:
        return pfs.find_pf(self.sysfs, name)

    def vfs(self, name: str) -> tuple[pfs.Vf, ...]:
        return pfs.list_vfs(self.sysfs, self.pf(name))

    def vf(self, name: str, index: int) -> pfs.Vf:
        found = next((vf for vf in self.vfs(name) if vf.index == index), None)
        if found is None:
            raise SriovError(f"{name} has no vf{index} (num_vfs is {self.pf(name).num_vfs})",
                             f"set num_vfs of {name} above {index} first")
        return found

    def representor(self, name: str, index: int) -> str | None:
        """The representor netdev of a VF (switchdev mode), to be added to an OVS bridge."""
        return pfs.representor(self.sysfs, self.pf(name), index)

    def eswitch(self, pf: pfs.Pf) -> str | None:
        try:
            return self.devlink.eswitch_mode("pci", pf.address)
        except (SriovUnsupported, UnavailableError):
            return None

    def ifindex(self, name: str) -> int:
        index = self.netlink.ifindex(name)
        if index is None:
            raise SriovError(f"{name} is not a network interface in this namespace",
                             "name the PF by its interface name on this host")
        return index

    def observe(self, name: str) -> PfState:
        pf = self.pf(name)
        configs = self.netlink.vf_configs(self.ifindex(name)) if pf.num_vfs else ()
        return PfState(pf, self.eswitch(pf), pfs.list_vfs(self.sysfs, pf), configs)

    # --- change ----------------------------------------------------------------------------------

    def ensure_pf(self, name: str, num_vfs: int, eswitch: str | None = None) -> tuple[pfs.Vf, ...]:
        """num_vfs and eswitch mode. A mode change goes through num_vfs 0 (drivers such as ice
        and older mlx5 refuse it with VFs present), then the VFs are created in the new mode."""
        pf = self.pf(name)
        if num_vfs > pf.total_vfs:
            raise TooManyVfs(name, num_vfs, pf.total_vfs)
        if eswitch is not None and self._mode_differs(pf, eswitch):
            pfs.set_num_vfs(self.sysfs, name, 0, self.clock)
            self.devlink.set_eswitch_mode("pci", pf.address, eswitch)
        return pfs.set_num_vfs(self.sysfs, name, num_vfs, self.clock)

    def _mode_differs(self, pf: pfs.Pf, wanted: str) -> bool:
        """Whether the eswitch must change; a PF without devlink eswitch support is legacy."""
        try:
            return self.devlink.eswitch_mode("pci", pf.address) != wanted
        except (SriovUnsupported, UnavailableError):
            if wanted == "legacy":
                return False
            raise

    def configure_vf(self, name: str, index: int, settings: VfSettings) -> VfConfig:
        """Apply a VF's settings in the documented order; returns what the PF then reports."""
        return configure_vf(self.netlink, self.ifindex(name), index, settings, self.clock)

    def bind_vfio(self, lab: str, name: str, index: int) -> pfs.Vf:
        """Give VF `index` to vfio-pci for passthrough (IOMMU group checked first); its driver
        before is recorded in the lab's saved original so that release/destroy restores it."""
        vf = self.vf(name, index)
        if vf.driver != vfio.VFIO:
            pfs.ensure_free(self.sysfs, vf, "passing it through to a VM")
        vfio.check_assignable(self.sysfs, vf.address)
        original = self.save_original(lab, name)
        if not original.driver_of(vf.address)[0]:
            self.state.save(lab, original.with_driver(vf.address, vf.driver))
        vfio.bind_vfio(self.sysfs, vf.address)
        return self.vf(name, index)

    def release_vfio(self, lab: str, name: str, index: int) -> pfs.Vf:
        """Give a VF back to the driver it had before bind_vfio."""
        vf = self.vf(name, index)
        original = self.state.load(lab, name)
        recorded, driver = original.driver_of(vf.address) if original else (False, None)
        vfio.restore_driver(self.sysfs, vf.address, driver if recorded else vf.driver)
        return self.vf(name, index)

    # --- originals -------------------------------------------------------------------------------

    def capture(self, name: str) -> PfOriginal:
        state = self.observe(name)
        return PfOriginal(name, state.pf.address, state.pf.num_vfs, state.eswitch, state.configs)

    def save_original(self, lab: str, name: str) -> PfOriginal:
        """Save the PF's state before the lab first changes it (a later call keeps the first)."""
        others = [other for other in self.state.labs_with(name) if other != lab]
        if others:
            raise VfBusy(name, f"lab {others[0]} already uses this PF",
                         f"destroy lab {others[0]} first; a PF belongs to one lab")
        saved = self.state.load(lab, name)
        return saved if saved is not None else self.state.save_once(lab, self.capture(name))

    def restore_original(self, lab: str, name: str) -> None:
        """Undo the lab's changes to the PF: VF drivers, eswitch mode, num_vfs, then VF settings
        (best effort per VF: every VF is tried, then one error lists what failed). VF netdevs
        must be back in the host namespace and down first (the caller moves them)."""
        original = self.state.load(lab, name)
        if original is None:
            return
        for address, driver in original.drivers:
            vfio.restore_driver(self.sysfs, address, driver)
        self.ensure_pf(name, original.num_vfs, original.eswitch)
        failed = []
        for config in original.vfs:
            try:
                self.configure_vf(name, config.vf, VfSettings.from_config(config))
            except SriovError as exc:
                failed.append(f"vf{config.vf}: {exc.message}")
        self.state.forget(lab, name)
        if failed:
            raise SriovError(f"{name}: could not restore the original settings of " + "; ".join(failed),
                             f"set them by hand (`ip link set {name} vf N …`); the rest is restored")

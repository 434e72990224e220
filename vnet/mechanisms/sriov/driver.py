"""Apply SR-IOV changes through the SR-IOV layer (vnet/mechanisms/sriov/host/): PFs, VF settings, vfio-pci
binding for VMs, VF netdevs moved into namespaces, representors renamed for OVS.

One wave's changes run in a fixed order: deletes first (netdevs and representors back, VFs
released, settings restored, PFs restored), then creates and updates (PF, settings, vfio,
netdev, representor). A change whose dependency failed in the same call is not attempted.
Every failure is a vnet error whose message (and fix) becomes the change's reason; no OSError
or pyroute2 exception leaves the layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vnet.errors import VnetError
from vnet.host import netns
from vnet.mechanisms.sriov.host import pf as pfs
from vnet.mechanisms.sriov.host.errors import SriovError, VfBusy
from vnet.mechanisms.sriov.host.host import SriovHost
from vnet.mechanisms.sriov.host.links import (
    VfLinks,
    netdev_alias,
    parse_netdev_alias,
    parse_rep_alias,
    rep_alias,
)
from vnet.mechanisms.sriov.host.settings import VfSettings
from vnet.mechanisms.sriov.resources import VF_SETTINGS, SriovNetdev, SriovPf, SriovRep, SriovVf, SriovVfio
from vnet.resources import HOST, Action, Change, Failure, Resource, ResourceKey

KINDS = ("sriov-pf", "sriov-vf", "sriov-vfio", "sriov-netdev", "sriov-rep")  # creation order
# A VF vnet configured that had no saved original (the lab created it): back to neutral values.
NEUTRAL = VfSettings(vlan=0, qos=0, min_tx_rate=0, max_tx_rate=0, trust=False, link_state="auto")


def settings_of(vf: SriovVf) -> VfSettings:
    return VfSettings(**{name: getattr(vf, name) for name in VF_SETTINGS})


@dataclass
class SriovDriver:
    lab: str
    host: SriovHost
    links: VfLinks
    kinds: tuple[str, ...] = KINDS

    def execute(self, changes: Sequence[Change]) -> list[Failure | None]:
        errors: list[Failure | None] = [None] * len(changes)
        failed: list[Resource] = []
        for k in sorted(range(len(changes)), key=lambda k: _rank(changes[k])):
            change = changes[k]
            blocker = _blocked(change, failed)
            try:
                if blocker is not None:
                    raise SriovError(f"not attempted: {blocker} failed")
                HANDLERS[(change.key[0], change.action)](self, change)
            except VnetError as exc:
                errors[k] = Failure(exc.message, getattr(exc, "errno", None), exc.hint)
                failed.append(change.resource)
        return errors

    # --- PF and VF settings ----------------------------------------------------------------------

    def pf_set(self, change: Change) -> None:
        want = change.desired
        assert isinstance(want, SriovPf)
        if change.action is Action.CREATE:
            self.host.save_original(self.lab, want.pf)
        self.host.ensure_pf(want.pf, want.num_vfs, want.eswitch)

    def pf_delete(self, change: Change) -> None:
        assert isinstance(change.observed, SriovPf)
        self.host.restore_original(self.lab, change.observed.pf)

    def vf_set(self, change: Change) -> None:
        want = change.desired
        assert isinstance(want, SriovVf)
        self.host.configure_vf(want.pf, want.vf, settings_of(want))

    def vf_delete(self, change: Change) -> None:
        have = change.observed
        assert isinstance(have, SriovVf)
        if not any(vf.index == have.vf for vf in self._vfs(have.pf)):
            return  # the VF is gone (num_vfs went down): nothing to restore
        original = self.host.state.load(self.lab, have.pf)
        config = next((c for c in original.vfs if c.vf == have.vf), None) if original else None
        self.host.configure_vf(have.pf, have.vf, VfSettings.from_config(config) if config else NEUTRAL)

    def _vfs(self, pf: str) -> tuple[pfs.Vf, ...]:
        try:
            return self.host.vfs(pf)
        except SriovError:
            return ()

    # --- what a VF is given to -------------------------------------------------------------------

    def vfio_bind(self, change: Change) -> None:
        want = change.desired
        assert isinstance(want, SriovVfio)
        self.host.bind_vfio(self.lab, want.pf, want.vf)

    def vfio_release(self, change: Change) -> None:
        have = change.resource
        assert isinstance(have, SriovVfio)
        if any(vf.index == have.vf for vf in self._vfs(have.pf)):
            self.host.release_vfio(self.lab, have.pf, have.vf)

    def netdev_move_in(self, change: Change) -> None:
        want = change.desired
        assert isinstance(want, SriovNetdev)
        vf = self.host.vf(want.pf, want.vf)
        if vf.netdev is None:
            raise VfBusy(str(vf), f"it has no netdev in the host's namespace (driver: {vf.driver or 'none'})",
                         "a VF given to a netns node needs its network driver (iavf, mlx5_core …) bound")
        pfs.ensure_free(self.host.sysfs, vf, f"moving it into namespace {want.netns}")
        self.links.move_in(vf.netdev, want.netns, want.name, netdev_alias(want.mark, want.ref, vf.netdev),
                           want.mtu)

    def netdev_configure(self, change: Change) -> None:
        want = change.desired
        assert isinstance(want, SriovNetdev)
        self.links.configure(want.netns, want.name, want.mtu, want.up)

    def netdev_move_out(self, change: Change) -> None:
        have = change.resource
        assert isinstance(have, SriovNetdev)
        if not netns.exists(have.netns):
            return  # the namespace is gone: the kernel gave the netdev back to the host
        device = self.links.devices(have.netns).get(have.name)
        parsed = parse_netdev_alias(self.lab, device.alias) if device is not None else None
        if parsed is not None and parsed[1] == have.ref:
            self.links.move_out(have.netns, have.name, parsed[2])

    def rep_rename(self, change: Change) -> None:
        want = change.desired
        assert isinstance(want, SriovRep)
        current = self.host.representor(want.pf, want.vf)
        if current is None:
            raise SriovError(f"{want.ref} has no representor netdev",
                             f"is {want.pf} in switchdev mode, and does its driver create VF representors?")
        original = current
        if current == want.name:  # renamed before, its mark lost: keep the original it names, if any
            device = self.links.devices(HOST).get(current)
            original = parse_rep_alias(want.mark, device.alias if device else "") or current
        self.links.rename(current, want.name, rep_alias(want.mark, original), up=True)

    def rep_restore(self, change: Change) -> None:
        have = change.resource
        assert isinstance(have, SriovRep)
        current = self.host.representor(have.pf, have.vf)
        device = self.links.devices(HOST).get(current) if current is not None else None
        original = parse_rep_alias(have.mark, device.alias) if device is not None else None
        if current is not None and original is not None:
            self.links.rename(current, original, "", up=False)


Handler = Callable[[SriovDriver, Change], None]
HANDLERS: dict[tuple[str, Action], Handler] = {
    ("sriov-pf", Action.CREATE): SriovDriver.pf_set,
    ("sriov-pf", Action.UPDATE): SriovDriver.pf_set,
    ("sriov-pf", Action.DELETE): SriovDriver.pf_delete,
    ("sriov-vf", Action.CREATE): SriovDriver.vf_set,
    ("sriov-vf", Action.UPDATE): SriovDriver.vf_set,
    ("sriov-vf", Action.DELETE): SriovDriver.vf_delete,
    ("sriov-vfio", Action.CREATE): SriovDriver.vfio_bind,
    ("sriov-vfio", Action.DELETE): SriovDriver.vfio_release,
    ("sriov-netdev", Action.CREATE): SriovDriver.netdev_move_in,
    ("sriov-netdev", Action.UPDATE): SriovDriver.netdev_configure,
    ("sriov-netdev", Action.DELETE): SriovDriver.netdev_move_out,
    ("sriov-rep", Action.CREATE): SriovDriver.rep_rename,
    ("sriov-rep", Action.DELETE): SriovDriver.rep_restore,
}


def _rank(change: Change) -> tuple[int, int]:
    position = KINDS.index(change.key[0])
    return (0, -position) if change.action is Action.DELETE else (1, position)


def _blocked(change: Change, failed: list[Resource]) -> str | None:
    """A failed change this one needs: a dependency (create/update), or a dependent (delete)."""
    if change.action is Action.DELETE:
        key = change.key
        found = next((r for r in failed if key in r.depends_on()), None)
    else:
        needs: tuple[ResourceKey, ...] = change.resource.depends_on()
        found = next((r for r in failed if r.key in needs), None)
    return found.describe() if found is not None else None

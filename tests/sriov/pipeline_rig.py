"""A two-PF SR-IOV host for pipeline tests: FAKE sysfs, VF netlink, devlink and clock
(tests/sriov/fakes.py), real TAPs standing in for VF netdevs (tests/sriov/standins.py), and
vnet's real code everywhere else: compile, observe, plan, apply, destroy, namespaces, rtnetlink.
vnet.mechanisms.sriov.HOST_FACTORY is pointed at it; PF and lab names are unique per test."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from vnet.mechanisms.sriov.host.host import SriovHost
from vnet.mechanisms.sriov.host.state import StateStore

from .fakes import FakeClock, FakeDevlink, FakeKernel, FakePf, FakePfs, FakeSysfs
from .standins import TapStandIns

ADDRESSES = ("0000:03:00.0", "0000:04:00.0")


@dataclass
class PipelineRig:
    host: SriovHost
    kernel: FakeKernel
    pfs: list[FakePf]
    devlink: FakeDevlink
    state: StateStore
    standins: TapStandIns
    token: str

    @property
    def names(self) -> tuple[str, str]:
        return self.pfs[0].name, self.pfs[1].name

    def vf_address(self, pf: int, index: int) -> str:
        return self.kernel.vf_address(self.kernel.pfs[ADDRESSES[pf]], index)


def make_pipeline_rig(tmp_path: Path, iommu: bool = True, total_vfs: int | None = 8) -> PipelineRig:
    token = secrets.token_hex(2)
    standins = TapStandIns()
    kernel = FakeKernel(tmp_path / "sys", hooks=standins)
    names = (f"s{token}a", f"s{token}b")
    kernel.add_pf(names[0], ADDRESSES[0], total_vfs=total_vfs, iommu=iommu)
    kernel.add_pf(names[1], ADDRESSES[1], driver="mlx5_core", vf_driver="mlx5_core", total_vfs=4, iommu=iommu)
    pfs = [FakePf(kernel, names[0], ADDRESSES[0], 7), FakePf(kernel, names[1], ADDRESSES[1], 8)]
    devlink = FakeDevlink()
    state = StateStore(tmp_path / "state")
    host = SriovHost(FakeSysfs(kernel.root, kernel), FakePfs(pfs), devlink, FakeClock(kernel), state)
    return PipelineRig(host, kernel, pfs, devlink, state, standins, token)

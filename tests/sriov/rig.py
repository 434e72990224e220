"""An SriovHost wired to FAKES (tests/sriov/fakes.py), never to the real host."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vnet.mechanisms.sriov.host.host import SriovHost
from vnet.mechanisms.sriov.host.state import StateStore

from .fakes import FakeClock, FakeDevlink, FakeKernel, FakePf, FakeSysfs

PF = "enp3s0f0"
PF_ADDRESS = "0000:03:00.0"


@dataclass
class Rig:
    """The SR-IOV layer as vnet builds it, with every host-facing part replaced by a fake."""

    host: SriovHost
    kernel: FakeKernel
    netlink: FakePf
    devlink: FakeDevlink
    clock: FakeClock
    state: StateStore

    def numvfs_writes(self) -> list[str]:
        return [value for path, value in self.kernel.writes if path.endswith("sriov_numvfs")]


def make_rig(tmp_path: Path, **pf: object) -> Rig:
    kernel = FakeKernel(tmp_path / "sys")
    kernel.add_pf(**pf)  # type: ignore[arg-type]
    netlink, devlink, clock = FakePf(kernel), FakeDevlink(), FakeClock(kernel)
    state = StateStore(tmp_path / "state")
    host = SriovHost(FakeSysfs(kernel.root, kernel), netlink, devlink, clock, state)
    return Rig(host, kernel, netlink, devlink, clock, state)

"""PFs and num_vfs against a FAKE sysfs tree and a FAKE kernel (tests/sriov/fakes.py): no SR-IOV
hardware here. The code under test is vnet's real sysfs path; only write(2) is faked."""

from __future__ import annotations

from pathlib import Path

import pytest

from vnet.errors import EX_UNAVAILABLE
from vnet.mechanisms.sriov.host.errors import PfMissing, SriovTimeout, SriovUnsupported, TooManyVfs, VfBusy
from vnet.mechanisms.sriov.host.pf import find_pf, set_num_vfs

from .rig import PF, PF_ADDRESS, Rig, make_rig


def test_find_pf(rig: Rig) -> None:
    pf = rig.host.pf(PF)
    assert (pf.name, pf.address, pf.driver, pf.total_vfs, pf.num_vfs) == (PF, PF_ADDRESS, "ixgbe", 8, 0)


def test_pf_missing(rig: Rig) -> None:
    with pytest.raises(PfMissing) as caught:
        rig.host.pf("enp9s0")
    assert caught.value.exit_code == EX_UNAVAILABLE
    assert "sriov_totalvfs" in caught.value.hint


def test_sriov_unsupported_without_sriov_totalvfs(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, total_vfs=None)
    with pytest.raises(SriovUnsupported, match="no sriov_totalvfs") as caught:
        rig.host.pf(PF)
    assert caught.value.exit_code == EX_UNAVAILABLE


def test_sriov_disabled_in_firmware(tmp_path: Path) -> None:
    with pytest.raises(SriovUnsupported, match="sriov_totalvfs is 0"):
        make_rig(tmp_path, total_vfs=0).host.pf(PF)


def test_a_vf_is_not_a_pf(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 1)
    with pytest.raises(SriovUnsupported, match="itself a VF"):
        find_pf(rig.host.sysfs, f"{PF}v0")


def test_num_vfs_0_to_4(rig: Rig) -> None:
    vfs = rig.host.ensure_pf(PF, 4)
    assert rig.numvfs_writes() == ["4"]
    assert [(vf.index, vf.address, vf.driver, vf.netdev) for vf in vfs] == [
        (i, f"0000:03:10.{i}", "ixgbevf", f"{PF}v{i}") for i in range(4)]
    assert all(vf.iommu_group for vf in vfs)
    assert rig.host.pf(PF).num_vfs == 4


def test_num_vfs_4_to_8_goes_through_0(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 4)
    vfs = rig.host.ensure_pf(PF, 8)
    assert rig.numvfs_writes() == ["4", "0", "8"]  # the kernel refuses 4 -> 8 directly (EBUSY)
    assert len(vfs) == 8 and vfs[7].address == "0000:03:10.7"


def test_the_fake_kernel_refuses_nonzero_to_nonzero_like_the_real_one(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 2)
    with pytest.raises(Exception, match="EBUSY"):
        rig.host.sysfs.write(f"bus/pci/devices/{PF_ADDRESS}/sriov_numvfs", "3")


def test_unchanged_num_vfs_writes_nothing(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 2)
    rig.host.ensure_pf(PF, 2)
    assert rig.numvfs_writes() == ["2"]


def test_more_vfs_than_totalvfs_refused_before_any_write(rig: Rig) -> None:
    with pytest.raises(TooManyVfs, match="at most 8") as caught:
        rig.host.ensure_pf(PF, 9)
    assert caught.value.exit_code == EX_UNAVAILABLE
    assert rig.kernel.writes == []


def test_waits_for_vf_netdevs(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, netdev_delay=5)  # netdevs appear 5 clock ticks after the VFs
    vfs = rig.host.ensure_pf(PF, 2)
    assert all(vf.netdev for vf in vfs)
    assert len(rig.clock.sleeps) == 5 and rig.clock.now < 10


def test_wait_is_bounded(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, netdev_delay=1000)  # the VF driver never gets there
    with pytest.raises(SriovTimeout, match="still waiting after 10 s") as caught:
        rig.host.ensure_pf(PF, 2)
    assert 10 <= rig.clock.now < 10.5
    assert "VF driver" in caught.value.hint


def test_vfs_no_driver_claims_are_accepted_after_a_grace_period(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, vf_driver=None)  # e.g. the VF driver is blacklisted for vfio-pci
    vfs = rig.host.ensure_pf(PF, 3)
    assert [vf.driver for vf in vfs] == [None] * 3
    assert 2 <= rig.clock.now < 2.5


def test_no_wait_when_autoprobe_is_off(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, vf_driver=None)
    (rig.kernel.device_dir("0000:03:00.0") / "sriov_drivers_autoprobe").write_text("0\n")
    assert len(rig.host.ensure_pf(PF, 3)) == 3 and rig.clock.sleeps == []


@pytest.mark.parametrize(("make_busy", "reason"), [
    ("up", "is up"),
    ("moved", "not in this network namespace"),
    ("vfio", "vfio-pci"),
])
def test_busy_vf_blocks_num_vfs_change(rig: Rig, make_busy: str, reason: str) -> None:
    vf = rig.host.ensure_pf(PF, 2)[1]
    flags = rig.kernel.root / f"class/net/{vf.netdev}/flags"
    if make_busy == "up":
        flags.write_text("0x1003\n")
    elif make_busy == "moved":
        rig.kernel.remove_netdevs(vf.address)  # as seen from the host after `ip link set … netns`
    else:
        rig.host.bind_vfio("lab1", PF, 1)
    before = list(rig.kernel.writes)
    with pytest.raises(VfBusy, match=reason) as caught:
        rig.host.ensure_pf(PF, 4)
    assert caught.value.exit_code == EX_UNAVAILABLE
    assert rig.kernel.writes == before  # nothing was changed


def test_set_num_vfs_to_zero(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 3)
    assert set_num_vfs(rig.host.sysfs, PF, 0, rig.clock) == ()
    assert rig.numvfs_writes() == ["3", "0"]
    assert not list((rig.kernel.root / "bus/pci/devices").glob("0000:03:10.*"))

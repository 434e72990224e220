"""vfio-pci bind / release against a FAKE sysfs tree and FAKE kernel (tests/sriov/fakes.py): the
writes asserted here are exactly what vnet writes to sysfs on a real host."""

from __future__ import annotations

from pathlib import Path

import pytest

from vnet.errors import EX_UNAVAILABLE, UnavailableError
from vnet.mechanisms.sriov.host.errors import NoIommuGroup, VfBusy

from .rig import PF, Rig, make_rig

VF1 = "0000:03:10.1"


def writes_since(rig: Rig, mark: int) -> list[tuple[str, str]]:
    return rig.kernel.writes[mark:]


def test_bind_sequence(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 2)
    mark = len(rig.kernel.writes)
    vf = rig.host.bind_vfio("lab1", PF, 1)
    assert writes_since(rig, mark) == [
        (f"bus/pci/devices/{VF1}/driver_override", "vfio-pci"),
        ("bus/pci/drivers/ixgbevf/unbind", VF1),
        ("bus/pci/drivers_probe", VF1),
    ]
    assert (vf.driver, vf.netdev) == ("vfio-pci", None)
    mark = len(rig.kernel.writes)
    rig.host.bind_vfio("lab1", PF, 1)  # idempotent
    assert writes_since(rig, mark) == []


def test_release_restores_the_original_driver(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 2)
    rig.host.bind_vfio("lab1", PF, 1)
    mark = len(rig.kernel.writes)
    vf = rig.host.release_vfio("lab1", PF, 1)
    assert writes_since(rig, mark) == [
        (f"bus/pci/devices/{VF1}/driver_override", "\n"),
        ("bus/pci/drivers/vfio-pci/unbind", VF1),
        ("bus/pci/drivers/ixgbevf/bind", VF1),
    ]
    assert (vf.driver, vf.netdev) == ("ixgbevf", f"{PF}v1")
    assert rig.state.load("lab1", PF) is not None  # the PF's original stays until destroy


def test_no_iommu_group(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, iommu=False)
    rig.host.ensure_pf(PF, 1)
    mark = len(rig.kernel.writes)
    with pytest.raises(NoIommuGroup) as caught:
        rig.host.bind_vfio("lab1", PF, 0)
    assert caught.value.exit_code == EX_UNAVAILABLE
    assert "intel_iommu=on iommu=pt" in caught.value.hint and "amd_iommu=on" in caught.value.hint
    assert writes_since(rig, mark) == []


def test_shared_group_with_a_host_device_is_refused(rig: Rig) -> None:
    vf = rig.host.ensure_pf(PF, 1)[0]
    group = rig.kernel.root / f"kernel/iommu_groups/{vf.iommu_group}/devices"
    rig.kernel.add_pci("0000:03:00.1", "ixgbe", vf.iommu_group)  # the sibling port, in the same group
    assert (group / "0000:03:00.1").is_symlink()
    with pytest.raises(VfBusy, match=r"also holds 0000:03:00.1 \(ixgbe\)"):
        rig.host.bind_vfio("lab1", PF, 0)


def test_a_pci_bridge_in_the_group_is_fine(rig: Rig) -> None:
    vf = rig.host.ensure_pf(PF, 1)[0]
    rig.kernel.add_pci("0000:00:01.0", "pcieport", vf.iommu_group, cls="0x060400")
    assert rig.host.bind_vfio("lab1", PF, 0).driver == "vfio-pci"


def test_vfio_pci_not_loaded(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 1)
    for entry in (rig.kernel.root / "bus/pci/drivers/vfio-pci").iterdir():
        entry.unlink()
    (rig.kernel.root / "bus/pci/drivers/vfio-pci").rmdir()
    with pytest.raises(UnavailableError, match="vfio-pci driver is not loaded") as caught:
        rig.host.bind_vfio("lab1", PF, 0)
    assert caught.value.hint.startswith("modprobe vfio-pci")


def test_a_vf_in_use_is_not_taken(rig: Rig) -> None:
    vf = rig.host.ensure_pf(PF, 1)[0]
    (rig.kernel.root / f"class/net/{vf.netdev}/flags").write_text("0x1003\n")
    with pytest.raises(VfBusy, match="is up"):
        rig.host.bind_vfio("lab1", PF, 0)

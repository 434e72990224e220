"""Saving a PF's original state and restoring it on destroy; the eswitch mode. Against FAKES
(tests/sriov/fakes.py: sysfs tree, kernel, rtnetlink PF, devlink): no SR-IOV hardware here."""

from __future__ import annotations

import json

import pytest

from vnet.mechanisms.sriov.host.errors import SriovError, SriovUnsupported, VfBusy
from vnet.mechanisms.sriov.host.netlink import VfConfig
from vnet.mechanisms.sriov.host.settings import VfSettings
from vnet.mechanisms.sriov.host.state import PfOriginal

from .rig import PF, PF_ADDRESS, Rig

ADMIN = VfConfig(0, "02:11:22:33:44:55", vlan=5, qos=0, min_tx_rate=0, max_tx_rate=2000, spoofchk=True,
                 trust=False, link_state="auto")


def host_config(rig: Rig) -> None:
    """What the host had before any lab: 2 VFs, vf0 configured by the administrator."""
    rig.host.ensure_pf(PF, 2)
    rig.host.configure_vf(PF, 0, VfSettings.from_config(ADMIN))
    rig.netlink.requests.clear()


def test_save_original_writes_a_state_file_once(rig: Rig) -> None:
    host_config(rig)
    saved = rig.host.save_original("lab1", PF)
    assert (saved.num_vfs, saved.eswitch, saved.vfs[0]) == (2, "legacy", ADMIN)
    data = json.loads(rig.state.path("lab1", PF).read_text())
    assert data["num_vfs"] == 2 and data["vfs"][0]["mac"] == ADMIN.mac
    rig.host.configure_vf(PF, 0, VfSettings(mac="02:00:00:00:10:00"))
    assert rig.host.save_original("lab1", PF).vfs[0] == ADMIN  # the first capture wins
    assert PfOriginal.from_json(data) == saved


def test_restore_original_after_the_lab_changed_everything(rig: Rig) -> None:
    host_config(rig)
    rig.host.save_original("lab1", PF)
    rig.host.ensure_pf(PF, 4)  # the lab: 4 VFs, new settings, one VF on vfio-pci
    rig.host.configure_vf(PF, 0, VfSettings(mac="02:00:00:00:10:00", vlan=100, trust=True))
    rig.host.bind_vfio("lab1", PF, 1)
    rig.host.restore_original("lab1", PF)
    assert rig.host.pf(PF).num_vfs == 2
    assert rig.netlink.configs[0] == ADMIN
    assert rig.netlink.configs[1] == VfConfig(1, spoofchk=True, trust=False)
    assert [vf.driver for vf in rig.host.vfs(PF)] == ["ixgbevf", "ixgbevf"]
    assert not rig.state.path("lab1", PF).exists()


def test_restore_with_num_vfs_unchanged_restores_settings_and_driver(rig: Rig) -> None:
    host_config(rig)
    rig.host.save_original("lab1", PF)
    rig.host.configure_vf(PF, 0, VfSettings(vlan=100, link_state="disable"))
    rig.host.bind_vfio("lab1", PF, 0)
    numvfs_writes = rig.numvfs_writes()
    rig.netlink.requests.clear()
    rig.host.restore_original("lab1", PF)
    assert rig.numvfs_writes() == numvfs_writes  # the VFs were not recreated
    assert [str(r) for r in rig.netlink.requests] == ["vf 0 vlan vlan=5 qos=0",
                                                      "vf 0 link_state link_state=0"]
    assert rig.host.vf(PF, 0).driver == "ixgbevf"


def test_restore_without_a_saved_state_does_nothing(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 1)
    writes = list(rig.kernel.writes)
    rig.host.restore_original("lab1", PF)
    assert rig.kernel.writes == writes


def test_restore_is_best_effort_per_vf(rig: Rig) -> None:
    host_config(rig)
    rig.host.save_original("lab1", PF)
    rig.host.configure_vf(PF, 0, VfSettings(trust=True))
    rig.netlink.refuse["trust"] = 95
    with pytest.raises(SriovError, match="could not restore the original settings of vf0"):
        rig.host.restore_original("lab1", PF)
    assert not rig.state.path("lab1", PF).exists()


def test_a_pf_belongs_to_one_lab(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 1)
    rig.host.save_original("lab1", PF)
    with pytest.raises(VfBusy, match="lab lab1 already uses this PF"):
        rig.host.save_original("lab2", PF)


def test_eswitch_change_goes_through_zero_vfs(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 2)
    rig.host.ensure_pf(PF, 2, "switchdev")
    assert rig.numvfs_writes() == ["2", "0", "2"]
    assert rig.devlink.calls == [("pci", PF_ADDRESS, "switchdev")]
    rig.host.ensure_pf(PF, 2, "switchdev")
    assert rig.numvfs_writes() == ["2", "0", "2"] and len(rig.devlink.calls) == 1
    assert rig.host.observe(PF).eswitch == "switchdev"


def test_switchdev_without_devlink_support_fails_before_touching_vfs(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 2)
    rig.devlink.supported = False
    assert rig.host.ensure_pf(PF, 2, "legacy")  # no eswitch support means legacy: fine
    with pytest.raises(SriovUnsupported, match="no devlink eswitch support") as caught:
        rig.host.ensure_pf(PF, 2, "switchdev")
    assert caught.value.exit_code == 69
    assert rig.numvfs_writes() == ["2"]


def test_observe(rig: Rig) -> None:
    host_config(rig)
    state = rig.host.observe(PF)
    assert state.pf.num_vfs == 2 and state.eswitch == "legacy"
    assert [vf.netdev for vf in state.vfs] == [f"{PF}v0", f"{PF}v1"]
    assert state.config(0) == ADMIN and state.config(7) is None


def test_representor_found_by_switch_id_and_port_name(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 2, "switchdev")
    root = rig.kernel.root
    (root / f"class/net/{PF}/phys_switch_id").write_text("7cfe900300ab12cd\n")
    for name, port, switch in (("eth5", "pf0vf1", "7cfe900300ab12cd"), ("eth4", "pf0vf0", "7cfe900300ab12cd"),
                               ("eth9", "pf0vf0", "0000000000000001")):  # another NIC's VF0 representor
        (root / f"class/net/{name}").mkdir(parents=True)
        (root / f"class/net/{name}/phys_port_name").write_text(port + "\n")
        (root / f"class/net/{name}/phys_switch_id").write_text(switch + "\n")
    assert rig.host.representor(PF, 0) == "eth4"
    assert rig.host.representor(PF, 1) == "eth5"
    assert rig.host.representor(PF, 2) is None

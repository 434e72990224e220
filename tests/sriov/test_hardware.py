"""The real SR-IOV path on real hardware: skipped unless VNET_TEST_PF=<pf netdev> is set (as root).

It uses vnet's real sysfs, rtnetlink and devlink code, no fakes: saves the PF's original
state, sets num_vfs to 1, gives vf0 a MAC and reads it back, then restores the original
(num_vfs, VF settings). The PF's existing VFs must not be in use.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vnet.drivers.sriov import SriovHost, StateStore, VfSettings

PF = os.environ.get("VNET_TEST_PF", "")
MAC = "02:00:00:00:ee:01"

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(not PF, reason="no SR-IOV hardware: set VNET_TEST_PF=<pf> to run"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]


def test_real_pf_num_vfs_mac_and_restore(tmp_path: Path) -> None:
    host = SriovHost(state=StateStore(tmp_path / "state"))
    before = host.observe(PF)
    host.save_original("vnet-hwtest", PF)
    try:
        vfs = host.ensure_pf(PF, 1)
        assert len(vfs) == 1 and host.pf(PF).num_vfs == 1
        config = host.configure_vf(PF, 0, VfSettings(mac=MAC, spoofchk=True))
        assert config.mac == MAC
        assert host.observe(PF).config(0) == config
    finally:
        host.restore_original("vnet-hwtest", PF)
    after = host.observe(PF)
    assert after.pf.num_vfs == before.pf.num_vfs
    assert after.configs == before.configs
    assert not (tmp_path / "state" / "vnet-hwtest").exists()

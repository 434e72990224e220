"""The real SR-IOV path on real hardware: skipped unless VNET_TEST_PF=<pf netdev> is set (as root).

It uses vnet's real sysfs, rtnetlink and devlink code, no fakes: saves the PF's original
state, sets num_vfs to 1, gives vf0 a MAC and reads it back, then restores the original
(num_vfs, VF settings); then the same through the whole pipeline (apply, re-plan, destroy) with
vf0's netdev given to a namespace. The PF's existing VFs must not be in use.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import vnet
from vnet import api
from vnet.mechanisms.sriov.host.host import SriovHost
from vnet.mechanisms.sriov.host.settings import VfSettings
from vnet.mechanisms.sriov.host.state import StateStore

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


def test_real_pf_through_the_pipeline(tmp_path: Path) -> None:
    """plan/apply/re-plan/destroy of a lab giving vf0 of the real PF to a namespace (no fakes:
    the session's default SR-IOV layer, saved originals under /run/vnet/sriov.d)."""
    original = SriovHost().observe(PF)
    path = tmp_path / "hw.yaml"
    path.write_text(f"name: vnethw\nsriov:\n  {PF}: {{num_vfs: 1}}\nnodes:\n  h1: {{kind: netns}}\n"
                    f"links:\n  - {{endpoints: [h1:eth0, 'sriov:{PF}/vf0'], ip: 198.18.250.1/24}}\n")
    lab = vnet.load(str(path))
    try:
        api.apply(lab)
        assert api.plan(lab).empty
    finally:
        api.destroy(lab.name)
    after = SriovHost().observe(PF)
    assert after.pf.num_vfs == original.pf.num_vfs and after.configs == original.configs

"""SR-IOV through the whole pipeline: plan, apply, re-plan, drift, destroy, plan-time errors.

FAKES (no SR-IOV hardware here): sysfs, VF netlink, devlink and the clock are the fakes of
tests/sriov/fakes.py, given to vnet through vnet.mechanisms.sriov.HOST_FACTORY. The VF
netdevs are real TAP devices (tests/sriov/standins.py). Everything else is vnet's real code on
the real host: namespaces, the rtnetlink moves of the VF netdevs into them and back, addresses,
the plan and its waves, the saved originals, destroy. Needs root.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

import vnet
from vnet import api
from vnet.errors import EX_UNAVAILABLE, VnetError
from vnet.host import netns
from vnet.mechanisms.base import HostFacts
from vnet.mechanisms.kernel.host import KernelHost
from vnet.mechanisms.sriov.compile import SriovFacts
from vnet.mechanisms.sriov.host.errors import NoIommuGroup, PfMissing, SriovUnsupported, TooManyVfs, VfBusy
from vnet.mechanisms.sriov.host.links import KernelVfLinks
from vnet.mechanisms.sriov.host.settings import VfSettings
from vnet.mechanisms.sriov.observe import sriov_facts
from vnet.pipeline.compile import compile_lab
from vnet.pipeline.execute import ApplyError
from vnet.resources import HOST, Action
from vnet.topology.lab import Lab

from .pipeline_rig import ADDRESSES, PipelineRig
from .standins import TapStandIns, in_host

pytestmark = [pytest.mark.root, pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]
ORIGINAL_MAC = "02:aa:00:00:00:01"


def lab_file(tmp_path: Path, rig: PipelineRig, name: str | None = None, extra: str = "",
             nodes: str = "") -> Lab:
    a, b = rig.names
    text = f"""
name: {name or 'sp' + rig.token}
sriov:
  {a}:
    num_vfs: 4
    vfs:
      0: {{vlan: 100, spoofchk: true, max_tx_rate: 1000}}
      1: {{mac: "02:00:00:00:10:01", vlan: 100, trust: true, link_state: enable}}
      3: {{link_state: disable}}
  {b}: {{num_vfs: 2, eswitch: switchdev}}
nodes:
  h1: {{kind: netns}}
  h2: {{kind: netns}}
{nodes}links:
  - {{endpoints: [h1:eth0, "sriov:{a}/vf1"], ip: 198.18.100.11/24}}
  - {{endpoints: [h2:eth0, "sriov:{b}/vf0"], ip: 198.18.200.2/24, mtu: 1400}}
{extra}"""
    path = tmp_path / f"{secrets.token_hex(3)}.yaml"
    path.write_text(text)
    return vnet.load(str(path))


def inside(namespace: str) -> tuple[dict[str, tuple[str, int, bool]], list[str]]:
    """(name -> (alias, mtu, up), addresses of eth0) of a real namespace."""
    with KernelHost() as host:
        found = host.links(namespace)
        links = {n: (link.alias or "", link.mtu, link.up) for n, link in found.items()}
        eth0 = found["eth0"].index if "eth0" in found else -1
        addresses = [f"{a.address}/{a.prefixlen}" for a in host.socket(namespace).addresses()
                     if a.index == eth0 and not a.address.startswith("fe80")]
    return links, addresses


def changes(lab: Lab) -> list[tuple[Action, str, str]]:
    return [(c.action, c.key[0], c.key[1]) for c in api.plan(lab).changes]


@pytest.fixture
def owned_before(pipeline_rig: PipelineRig) -> PipelineRig:
    """PF b had 2 VFs before the lab (legacy mode), vf0 with a MAC of its own: the original."""
    host, b = pipeline_rig.host, pipeline_rig.names[1]
    host.ensure_pf(b, 2)
    host.configure_vf(b, 0, VfSettings(mac=ORIGINAL_MAC))
    return pipeline_rig


def test_apply_replan_drift_destroy(owned_before: PipelineRig, tmp_path: Path) -> None:
    rig = owned_before
    a, b = rig.names
    lab = lab_file(tmp_path, rig)
    planned = changes(lab)
    assert (Action.CREATE, "sriov-pf", a) in planned
    assert (Action.CREATE, "sriov-netdev", f"{b}/vf0") in planned
    assert rig.kernel.writes == [("bus/pci/devices/0000:04:00.0/sriov_numvfs", "2")]  # the fixture's only
    try:
        api.apply(lab)
        _check_applied(rig, lab)
        assert api.plan(lab).empty, api.plan(lab).to_json()
        _drift_vf_mac(rig, lab)
        _drift_netdev_moved_out(rig, lab)
        with pytest.raises(VfBusy) as caught:  # a PF belongs to one lab
            api.plan(lab_file(tmp_path, rig, name="sq" + rig.token))
        assert caught.value.exit_code == EX_UNAVAILABLE and "destroy lab" in caught.value.hint
    finally:
        api.destroy(lab.name)
    _check_destroyed(rig, lab)


def _check_applied(rig: PipelineRig, lab: Lab) -> None:
    a = rig.names[0]
    assert rig.kernel.numvfs(ADDRESSES[0]) == 4 and rig.kernel.numvfs(ADDRESSES[1]) == 2
    assert rig.devlink.modes[ADDRESSES[1]] == "switchdev"
    vf1 = rig.pfs[0].configs[1]
    assert (vf1.mac, vf1.vlan, vf1.trust, vf1.link_state) == ("02:00:00:00:10:01", 100, True, "enable")
    assert rig.pfs[0].configs[0].max_tx_rate == 1000 and rig.pfs[0].configs[3].link_state == "disable"
    assert rig.pfs[1].configs[0].mac == lab.interfaces[("h2", "eth0")].mac  # a VF gets its interface's MAC
    links, addresses = inside(f"vnet-{lab.name}-h1")
    assert links["eth0"] == (f"vnet:{lab.name}:h1:eth0:{a}/vf1:{a}v1", 1500, True)
    assert addresses == ["198.18.100.11/24"]
    links, _ = inside(f"vnet-{lab.name}-h2")
    assert links["eth0"][1:] == (1400, True)
    assert not in_host(f"{a}v1") and in_host(f"{a}v0")  # moved, and the other VFs stay
    assert rig.state.pfs(lab.name) == sorted(rig.names)


def _drift_vf_mac(rig: PipelineRig, lab: Lab) -> None:
    a = rig.names[0]
    rig.pfs[0].configs[1] = replace(rig.pfs[0].configs[1], mac="02:00:00:00:99:99")  # by hand
    plan = api.plan(lab)
    assert [(c.action, c.key, c.reason) for c in plan.changes] == [
        (Action.UPDATE, ("sriov-vf", f"{a}/vf1"), "differs: mac")]
    api.apply(lab)
    assert rig.pfs[0].configs[1].mac == "02:00:00:00:10:01"
    assert api.plan(lab).empty


def _drift_netdev_moved_out(rig: PipelineRig, lab: Lab) -> None:
    a = rig.names[0]
    with KernelHost() as host:  # an administrator moves the VF netdev back to the host
        KernelVfLinks(host).move_out(f"vnet-{lab.name}-h1", "eth0", f"{a}v1")
    assert in_host(f"{a}v1")
    planned = changes(lab)
    assert (Action.CREATE, "sriov-netdev", f"{a}/vf1") in planned
    assert (Action.CREATE, "address", f"vnet-{lab.name}-h1/eth0/198.18.100.11/24") in planned
    api.apply(lab)
    assert not in_host(f"{a}v1") and inside(f"vnet-{lab.name}-h1")[1] == ["198.18.100.11/24"]
    assert api.plan(lab).empty


def _check_destroyed(rig: PipelineRig, lab: Lab) -> None:
    a, b = rig.names
    assert not [n for n in netns.names() if n.startswith(f"vnet-{lab.name}-")]
    # The VF netdev left the namespace (under its own name) before PF a's VFs were removed.
    assert (f"{a}v1", True) in rig.standins.removals
    assert rig.kernel.numvfs(ADDRESSES[0]) == 0  # PF a: the original count
    assert rig.kernel.numvfs(ADDRESSES[1]) == 2 and rig.devlink.modes[ADDRESSES[1]] == "legacy"
    assert rig.pfs[1].configs[0].mac == ORIGINAL_MAC
    assert in_host(f"{b}v0") and in_host(f"{b}v1")
    assert rig.state.pfs(lab.name) == [] and lab.name not in api.labs()
    assert not rig.host.state.labs_with(a)


def test_removing_a_vf_link_moves_the_netdev_back(pipeline_rig: PipelineRig, tmp_path: Path) -> None:
    rig = pipeline_rig
    a = rig.names[0]
    lab = lab_file(tmp_path, rig)
    try:
        api.apply(lab)
        smaller = lab_file(tmp_path, rig, name=lab.name)
        text = Path(smaller.file).read_text().replace(f'  - {{endpoints: [h1:eth0, "sriov:{a}/vf1"], '
                                                      'ip: 198.18.100.11/24}\n', "")
        Path(smaller.file).write_text(text)
        smaller = vnet.load(smaller.file)
        planned = changes(smaller)
        assert (Action.DELETE, "sriov-netdev", f"{a}/vf1") in planned
        api.apply(smaller)
        assert in_host(f"{a}v1") and "eth0" not in inside(f"vnet-{lab.name}-h1")[0]
        assert api.plan(smaller).empty
    finally:
        api.destroy(lab.name)


def test_a_refused_setting_rolls_the_apply_back(pipeline_rig: PipelineRig, tmp_path: Path) -> None:
    """The PF driver refuses `trust` (EOPNOTSUPP): apply fails with exit 69 naming the setting and
    undoes what it did, the PFs' saved originals included."""
    rig = pipeline_rig
    rig.pfs[0].refuse["trust"] = errno.EOPNOTSUPP
    lab = lab_file(tmp_path, rig)
    try:
        with pytest.raises(ApplyError) as caught:
            api.apply(lab)
        assert caught.value.exit_code == EX_UNAVAILABLE
        assert "EOPNOTSUPP" in caught.value.message and "trust" in caught.value.message
        assert "rolled back" in caught.value.message
        assert not [n for n in netns.names() if n.startswith(f"vnet-{lab.name}-")]
        assert rig.kernel.numvfs(ADDRESSES[0]) == 0 and rig.kernel.numvfs(ADDRESSES[1]) == 0
        assert rig.devlink.modes.get(ADDRESSES[1], "legacy") == "legacy"
        assert rig.state.pfs(lab.name) == []
    finally:
        api.destroy(lab.name)


# --- plan-time errors: exit 69 with the fix, and nothing changed --------------------------------

def _refused(lab: Lab, rig: PipelineRig, error: type[VnetError]) -> VnetError:
    before = list(rig.kernel.writes)
    with pytest.raises(error) as caught:
        api.plan(lab)
    assert caught.value.exit_code == EX_UNAVAILABLE and caught.value.hint
    assert rig.kernel.writes == before
    assert not [n for n in netns.names() if n.startswith(f"vnet-{lab.name}-")]
    return caught.value


def test_pf_missing(pipeline_rig: PipelineRig, tmp_path: Path) -> None:
    lab = lab_file(tmp_path, pipeline_rig)
    text = Path(lab.file).read_text().replace(pipeline_rig.names[1], "enp9s0f9")
    Path(lab.file).write_text(text)
    error = _refused(vnet.load(lab.file), pipeline_rig, PfMissing)
    assert "enp9s0f9" in error.message and "sriov_totalvfs" in error.hint


def test_sriov_unsupported(pipeline_rigs: Callable[..., PipelineRig], tmp_path: Path) -> None:
    rig = pipeline_rigs(total_vfs=None)  # PF a has no sriov_totalvfs
    error = _refused(lab_file(tmp_path, rig), rig, SriovUnsupported)
    assert "CONFIG_PCI_IOV" in error.message or "SR-IOV" in error.message


def test_too_many_vfs(pipeline_rig: PipelineRig, tmp_path: Path) -> None:
    lab = lab_file(tmp_path, pipeline_rig)
    Path(lab.file).write_text(Path(lab.file).read_text().replace("num_vfs: 4", "num_vfs: 16"))
    error = _refused(vnet.load(lab.file), pipeline_rig, TooManyVfs)
    assert "at most 8" in error.message


def test_vf_busy(pipeline_rig: PipelineRig, tmp_path: Path) -> None:
    rig = pipeline_rig
    rig.host.ensure_pf(rig.names[0], 2)  # the host uses PF a's VFs: vf1's netdev is up
    flags = rig.kernel.root / f"class/net/{rig.names[0]}v1/flags"
    flags.write_text("0x1003\n")
    error = _refused(lab_file(tmp_path, rig), rig, VfBusy)
    assert f"{rig.names[0]}/vf1" in error.message and "is up" in error.message


def test_switchdev_without_devlink(pipeline_rig: PipelineRig, tmp_path: Path) -> None:
    pipeline_rig.devlink.supported = False
    error = _refused(lab_file(tmp_path, pipeline_rig), pipeline_rig, SriovUnsupported)
    assert "devlink" in error.message


def test_no_iommu_group_for_a_vm(pipeline_rigs: Callable[..., PipelineRig], tmp_path: Path) -> None:
    """Checked at compile time against host facts (no QEMU or tiny image needed here)."""
    rig = pipeline_rigs(iommu=False)
    lab = lab_file(tmp_path, rig, extra=f'  - {{endpoints: [vm1:eth0, "sriov:{rig.names[0]}/vf0"]}}\n',
                   nodes="  vm1: {kind: vm}\n")
    facts = HostFacts((SriovFacts(sriov_facts(rig.host, lab.topology.sriov)),))
    with pytest.raises(NoIommuGroup) as caught:
        compile_lab(lab, facts)
    assert caught.value.exit_code == EX_UNAVAILABLE and "intel_iommu=on" in caught.value.hint
    assert rig.kernel.writes == []


def test_kernel_links_rename_a_representor_for_real(tmp_path: Path) -> None:
    """The representor rename and its undo, by vnet's real rtnetlink code, on a real TAP standing
    in for a representor netdev (the fakes cannot say what the kernel accepts)."""
    standins = TapStandIns()
    original, renamed = f"r{secrets.token_hex(3)}", f"vr{secrets.token_hex(6)}"
    standins.added(original)
    try:
        with KernelHost() as host:
            links = KernelVfLinks(host)
            links.rename(original, renamed, f"vnet:x:p/vf0:representor:{original}", up=True)
            host.invalidate()
            device = links.devices(HOST)[renamed]
            assert (device.alias, device.up) == (f"vnet:x:p/vf0:representor:{original}", True)
            links.rename(renamed, original, "", up=False)
            host.invalidate()
            assert (links.devices(HOST)[original].alias, links.devices(HOST)[original].up) == ("", False)
    finally:
        standins.made.add(renamed)
        standins.cleanup()

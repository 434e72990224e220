"""`vnet host check` against snapshot trees and against this machine's own /sys and /proc.

The trees under snapshots/ hold only the files the checks read (made to look like real hosts):
intel-vtd-ir (VT-d, both DMAR units with ecap bit 3 = interrupt remapping), intel-vtd-no-ir
(ecap bit 3 clear, nested off, OVS module not loaded), amd-iommu (AMD-Vi IVHD, NPT), no-iommu
(VT-d off), sriov-shared-group (an SR-IOV PF whose IOMMU group it shares with its sibling port).
What a tree cannot hold as files (generic netlink families, binaries) is in vnet-snapshot.json.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from vnet.cli import cli
from vnet.host.check import HostView, Result, Status, run_checks
from vnet.host.checks.base import REGISTRY, SnapshotProbes, capability

SNAPSHOTS = Path(__file__).parent / "snapshots"
ALL = sorted(p.name for p in SNAPSHOTS.iterdir() if p.is_dir())


def statuses(root: Path | str) -> dict[str, Status]:
    return {r.name: r.status for r in run_checks(root).results}


def result(root: Path | str, name: str) -> Result:
    return next(r for r in run_checks(root).results if r.name == name)


EXPECTED: dict[str, dict[str, Status]] = {
    "intel-vtd-ir": {"cpu-virtualization": Status.PASS, "slat": Status.PASS,
                     "nested-virtualization": Status.PASS, "kvm": Status.PASS, "iommu": Status.PASS,
                     "iommu-cmdline": Status.PASS, "interrupt-remapping": Status.PASS,
                     "nic-iommu-group:eno1": Status.PASS, "sriov": Status.NA, "vfio-pci": Status.PASS,
                     "ovs-kernel-datapath": Status.PASS, "hugepages": Status.PASS, "tun": Status.PASS},
    "intel-vtd-no-ir": {"nested-virtualization": Status.WARN, "iommu": Status.PASS,
                        "interrupt-remapping": Status.WARN, "vfio-pci": Status.PASS,
                        "vhost-net": Status.WARN, "ovs-kernel-datapath": Status.WARN,
                        "ovs-userspace": Status.WARN, "qemu-img": Status.WARN, "qemu-system": Status.PASS},
    "amd-iommu": {"cpu-virtualization": Status.PASS, "slat": Status.PASS,
                  "nested-virtualization": Status.PASS, "iommu": Status.PASS,
                  "iommu-cmdline": Status.PASS, "interrupt-remapping": Status.PASS,
                  "nic-iommu-group:enp65s0": Status.PASS},
    "no-iommu": {"cpu-virtualization": Status.PASS, "iommu": Status.WARN, "iommu-cmdline": Status.WARN,
                 "interrupt-remapping": Status.NA, "nic-iommu-group:enp2s0": Status.NA,
                 "vfio-pci": Status.WARN, "sriov": Status.NA, "ovs-kernel-datapath": Status.WARN},
    "sriov-shared-group": {"nic-iommu-group:enp3s0f0": Status.WARN, "nic-iommu-group:enp3s0f1": Status.WARN,
                           "nic-iommu-group:enp3s0f0v0": Status.PASS, "sriov:enp3s0f0": Status.PASS,
                           "sriov:enp3s0f1": Status.WARN, "interrupt-remapping": Status.PASS},
}


@pytest.mark.parametrize("snapshot", ALL)
def test_snapshot_statuses(snapshot: str) -> None:
    got = statuses(SNAPSHOTS / snapshot)
    assert {name: got.get(name) for name in EXPECTED[snapshot]} == EXPECTED[snapshot]


@pytest.mark.parametrize("snapshot", ALL)
def test_every_capability_reports_with_evidence_and_a_fix_when_not_passing(snapshot: str) -> None:
    report = run_checks(SNAPSHOTS / snapshot)
    names = [r.name for r in report.results]
    assert len(names) == len(set(names))
    for capability_name in REGISTRY:
        assert any(n == capability_name or n.startswith(f"{capability_name}:") for n in names)
    for r in report.results:
        assert r.evidence
        if r.status in (Status.WARN, Status.FAIL):
            assert r.fix, f"{r.name} says {r.status} without a fix"
    assert report.exit_code == 0


def test_interrupt_remapping_reads_ecap_bit_3() -> None:
    good = result(SNAPSHOTS / "intel-vtd-ir", "interrupt-remapping")
    assert "dmar0 ecap 0xf050da IR(bit 3)=1" in good.evidence
    assert "dmar1" in good.evidence
    bad = result(SNAPSHOTS / "intel-vtd-no-ir", "interrupt-remapping")
    assert "IR(bit 3)=0" in bad.evidence
    assert "allow_unsafe_interrupts" in bad.fix


def test_amd_iommu_evidence() -> None:
    assert "npt" in result(SNAPSHOTS / "amd-iommu", "slat").evidence
    assert "ivhd0" in result(SNAPSHOTS / "amd-iommu", "interrupt-remapping").evidence
    group = result(SNAPSHOTS / "amd-iommu", "nic-iommu-group:enp65s0")
    assert "PCI bridge(s) 0000:40:01.1 (fine)" in group.evidence


def test_no_iommu_says_how_to_turn_it_on() -> None:
    root = SNAPSHOTS / "no-iommu"
    assert "intel_iommu=on iommu=pt" in result(root, "iommu").fix
    assert "intel_iommu=on iommu=pt" in result(root, "iommu-cmdline").fix
    assert "no IOMMU" in result(root, "interrupt-remapping").evidence


def test_shared_group_names_the_other_devices_but_not_the_bridge() -> None:
    root = SNAPSHOTS / "sriov-shared-group"
    shared = result(root, "nic-iommu-group:enp3s0f0")
    assert "shared with 0000:03:00.1" in shared.evidence
    assert "0000:00:01.0" not in shared.evidence  # a PCI bridge does not block passthrough
    assert "whole group" in shared.evidence
    pf = result(root, "sriov:enp3s0f0")
    assert "ixgbe" in pf.evidence and "sriov_totalvfs 8" in pf.evidence and "sriov_numvfs 2" in pf.evidence
    assert not any(r.name.startswith("sriov:enp3s0f0v") for r in run_checks(root).results)  # VFs skipped


class Probes(SnapshotProbes):
    """A fake of the live probes: /dev/kvm answers with `answer`."""

    def __init__(self, answer: int | str | None) -> None:
        super().__init__()
        object.__setattr__(self, "answer", answer)

    def kvm_api_version(self, path: Path) -> int | str | None:
        return self.answer  # type: ignore[attr-defined, no-any-return]


def without_vmx(tmp_path: Path) -> Path:
    root = tmp_path / "novmx"
    shutil.copytree(SNAPSHOTS / "intel-vtd-ir", root, symlinks=True)
    cpuinfo = root / "proc/cpuinfo"
    cpuinfo.write_text(cpuinfo.read_text().replace(" vmx", "").replace(" ept", ""))
    return root


@pytest.mark.parametrize(("answer", "vmx", "status"), [
    (12, True, Status.PASS), (None, True, Status.PASS), (11, True, Status.FAIL),
    ("cannot open: Permission denied", True, Status.FAIL),
    (12, False, Status.WARN),  # this machine: /dev/kvm answers, but without vmx no ordinary guest runs
])
def test_kvm_usable(tmp_path: Path, answer: int | str | None, vmx: bool, status: Status) -> None:
    root = SNAPSHOTS / "intel-vtd-ir" if vmx else without_vmx(tmp_path)
    report = run_checks(host=HostView(root, Probes(answer)))
    kvm = next(r for r in report.results if r.name == "kvm")
    assert kvm.status is status, kvm


def test_without_vmx_nothing_virtualization_passes(tmp_path: Path) -> None:
    got = statuses(without_vmx(tmp_path))
    assert got["cpu-virtualization"] is Status.WARN
    assert got["slat"] is Status.NA and got["nested-virtualization"] is Status.NA
    assert got["kvm"] is Status.WARN


def test_registry_refuses_a_second_check_under_one_name() -> None:
    with pytest.raises(ValueError, match="twice"):
        capability("tun")(lambda host: [])


# --- the CLI -------------------------------------------------------------------------------------

def test_cli_json(tmp_path: Path) -> None:
    run = CliRunner().invoke(cli, ["host", "check", "--root", str(SNAPSHOTS / "sriov-shared-group"),
                                   "--json"])
    assert run.exit_code == 0, run.output
    data = json.loads(run.output)
    assert all(set(item) == {"name", "status", "evidence", "fix"} for item in data)
    by_name = {item["name"]: item for item in data}
    assert by_name["nic-iommu-group:enp3s0f0"]["status"] == "WARN"
    assert by_name["interrupt-remapping"]["status"] == "PASS"


def test_cli_text_one_line_per_capability() -> None:
    root = SNAPSHOTS / "no-iommu"
    run = CliRunner().invoke(cli, ["host", "check", "--root", str(root)])
    assert run.exit_code == 0
    lines = run.output.splitlines()
    assert len(lines) == len(run_checks(root).results)
    assert lines[0].startswith("PASS  cpu-virtualization")
    assert any(line.startswith("WARN  iommu ") and "fix: enable VT-d" in line for line in lines)


@pytest.mark.parametrize(("remove", "change", "failing"), [
    ("dev/net/tun", None, "tun"),
    (None, ("proc/sys/user/max_net_namespaces", "0\n"), "netns"),
    ("proc/self/ns/net", None, "netns"),
])
def test_cli_exits_69_when_a_lab_basic_fails(tmp_path: Path, remove: str | None,
                                             change: tuple[str, str] | None, failing: str) -> None:
    root = tmp_path / "host"
    shutil.copytree(SNAPSHOTS / "no-iommu", root, symlinks=True)
    if remove:
        os.unlink(root / remove)
    if change:
        (root / change[0]).write_text(change[1])
    run = CliRunner().invoke(cli, ["host", "check", "--root", str(root), "--json"])
    assert run.exit_code == 69
    data = {item["name"]: item for item in json.loads(run.stdout)}
    assert data[failing]["status"] == "FAIL" and data[failing]["fix"]


# --- this machine ----------------------------------------------------------------------------------

def _flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def test_live_host_reports_what_is_true_here() -> None:
    """This machine (README, "Host readiness"): no vmx, /dev/kvm without VT-x, no IOMMU, no SR-IOV,
    no kernel OVS. Each assertion is derived from the host itself so it holds on other machines too."""
    report = run_checks("/")
    got = {r.name: r for r in report.results}
    if not _flags() & {"vmx", "svm"}:
        assert got["cpu-virtualization"].status is Status.WARN
        assert "TCG" in got["cpu-virtualization"].evidence
        assert got["kvm"].status is not Status.PASS  # /dev/kvm may exist (kvm_pvm here): not usable
        assert got["slat"].status is Status.NA
    if not os.listdir("/sys/kernel/iommu_groups"):
        assert got["iommu"].status is Status.WARN
        assert got["interrupt-remapping"].status is Status.NA
        assert all(r.status is Status.NA for n, r in got.items() if n.startswith("nic-iommu-group"))
    if not list(Path("/sys/class/net").glob("*/device/sriov_totalvfs")):
        assert got["sriov"].status is Status.NA
    if not os.path.exists("/sys/module/openvswitch"):
        assert got["ovs-kernel-datapath"].status is Status.WARN
    if os.access("/dev/net/tun", os.R_OK | os.W_OK):
        assert got["tun"].status is Status.PASS
    assert got["netns"].status is Status.PASS
    assert report.exit_code == 0


def test_live_cli() -> None:
    run = CliRunner().invoke(cli, ["host", "check", "--json"])
    assert run.exit_code == 0, run.output
    assert {item["name"] for item in json.loads(run.stdout)} >= {"cpu-virtualization", "iommu", "tun"}

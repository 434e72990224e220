"""VM nodes for real: tiny QEMU guests (TCG) on TAP devices of an OVS bridge and a Linux bridge.

The quickstart lab's shape with unique names: two VMs on an OVS access port in VLAN 10, a VM
and a namespace on a Linux bridge joined to VLAN 10, and a namespace in VLAN 20 with an address
in the same subnet that must stay isolated. One lab serves the whole module (booting guests
under TCG costs seconds); the tests run in file order and each leaves the lab converged. h3 is
h2's VLAN 20 neighbour: the positive control that makes h2's isolation rows proof.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ovslib import LabFiles, Labs, PrivateOvs, ip_json, kernel_leftovers, vnet

from vnet import api
from vnet.mechanisms.qemu import process as qemu
from vnet.resources import Action
from vnet.topology import Lab
from vnet.topology.model import VmNode

QUICKSTART = """
name: $lab
networks:
  lan10: {subnet: 198.18.10.0/24}
switches:
  $b1: {type: ovs}
  $b2: {type: linux}
nodes:
  vm1: {kind: vm, image: tiny, memory: 128}
  vm2: {kind: vm, image: tiny, memory: 128}
  vm3: {kind: vm, image: tiny, memory: 128}
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
links:
  - {endpoints: [vm1:eth0, $b1], vlan: 10, network: lan10}
  - {endpoints: [vm2:eth0, $b1], vlan: 10, network: lan10}
  - {endpoints: [$b1, $b2], vlan: 10}
  - {endpoints: [vm3:eth0, $b2], network: lan10}
  - {endpoints: [h1:eth0, $b2], ip: 198.18.10.100/24}
  - {endpoints: [h2:eth0, $b1], vlan: 20, ip: 198.18.10.200/24}
  - {endpoints: [h3:eth0, $b1], vlan: 20, ip: 198.18.10.201/24}
expect:
  - {from: vm1, to: vm2}
  - {from: vm1, to: vm2, proto: tcp}
  - {from: vm1, to: vm3}
  - {from: vm3, to: vm1, proto: udp}
  - {from: vm2, to: h1}
  - {from: h1, to: vm1}
  - {from: h1, to: vm1, proto: tcp}
  - {from: h2, to: vm1, reach: false}
  - {from: vm3, to: h2, reach: false}
  - {from: vm3, to: h2, proto: tcp, reach: false}
"""


def _vm_leftovers(name: str) -> list[str]:
    left = [f"QEMU pid {vm.pid} ({vm.node})" for vm in qemu.running_vms(name)]
    if qemu.lab_run_dir(name).exists():
        left.append(f"run directory {qemu.lab_run_dir(name)}")
    return left


@pytest.fixture(scope="module")
def vm_lab(ovs: PrivateOvs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabFiles, Lab]]:
    labs = Labs(ovs, tmp_path_factory.mktemp("vms"))
    try:
        yield labs.up(QUICKSTART, "vm")
    finally:
        names = [files.name for files in labs.made]
        problems = labs.cleanup()
        problems += [p for name in names for p in _vm_leftovers(name)]
        assert not problems, problems


def test_vms_come_up_and_verify_passes(vm_lab: tuple[LabFiles, Lab], ovs: PrivateOvs) -> None:
    _files, lab = vm_lab
    running = {vm.node: vm for vm in qemu.running_vms(lab.name)}
    assert sorted(running) == ["vm1", "vm2", "vm3"]
    kvm = qemu.kvm_usable()  # what compile asked of this host (VmFacts.kvm)
    for vm in running.values():
        assert f"guest=vnet:{lab.name}:{vm.node}" in " ".join(vm.argv)
        assert "-daemonize" in vm.argv
        # the accelerator vnet chose for this host and the node's `accel:`, KVM host or not
        node = lab.topology.nodes[vm.node]
        assert isinstance(node, VmNode)
        chosen, why = qemu.choose_accel(node.accel, kvm)
        assert [b for a, b in itertools.pairwise(vm.argv) if a == "-accel"] == [chosen], (why, vm.argv)
    report = api.verify(lab, ovsdb=ovs.remote)
    assert report.ok, report.to_json()
    outcomes = {(o.probe.source, o.probe.target, o.probe.reach) for o in report.outcomes}
    assert ("h2", "vm1", False) in outcomes and ("vm3", "h2", False) in outcomes
    assert ("vm1", "vm2", True) in outcomes
    assert api.plan(lab, ovsdb=ovs.remote).empty, "re-plan after apply must be empty"


def test_exec_in_vm_shows_its_address(vm_lab: tuple[LabFiles, Lab], ovs: PrivateOvs) -> None:
    files, _lab = vm_lab
    done = vnet("exec", str(files.files[-1]), "vm1", "--", "ip", "-4", "addr", "show", "eth0",
                env={"VNET_OVSDB": ovs.remote})
    assert done.returncode == 0, done.stderr
    assert "198.18.10.1/24" in done.stdout
    failed = vnet("exec", str(files.files[-1]), "vm2", "--", "sh", "-c", "echo oops >&2; exit 3",
                  env={"VNET_OVSDB": ovs.remote})
    assert failed.returncode == 3 and "oops" in failed.stderr


def test_status_shows_each_guest_and_pgrep_finds_it(vm_lab: tuple[LabFiles, Lab], ovs: PrivateOvs) -> None:
    files, lab = vm_lab
    done = vnet("status", str(files.files[-1]), "--json", env={"VNET_OVSDB": ovs.remote})
    assert done.returncode == 0, done.stderr
    nodes = {n["name"]: n for n in json.loads(done.stdout)[0]["nodes"]}
    for vm in qemu.running_vms(lab.name):
        shown = nodes[vm.node]
        assert shown["kind"] == "vm" and shown["facts"]["pid"] == [str(vm.pid)]
        assert shown["facts"]["accel"] == [dict(itertools.pairwise(vm.argv))["-accel"]]
        assert Path(shown["facts"]["serial log"][0]).is_file()
        [eth0] = shown["interfaces"]
        [tap] = eth0["facts"]["tap"]
        assert f"ifname={tap}," in " ".join(vm.argv)
        nic = next(a for a in vm.argv if a.startswith("virtio-net-pci"))
        assert f"mac={eth0['facts']['mac'][0]}" in nic
        # `pgrep qemu` and `ps` see the guest under its node's name
        assert Path(f"/proc/{vm.pid}/comm").read_text().strip() == f"qemu-{vm.node}"
        found = subprocess.run(["pgrep", "-x", f"qemu-{vm.node}"], check=True, capture_output=True, text=True)
        assert str(vm.pid) in found.stdout.split()
    assert nodes["vm1"]["interfaces"][0]["facts"]["vlan"] == ["10"]  # its OVS access port


def test_killed_vm_is_drift_and_apply_restarts_it(vm_lab: tuple[LabFiles, Lab], ovs: PrivateOvs) -> None:
    _files, lab = vm_lab
    victim = next(vm for vm in qemu.running_vms(lab.name) if vm.node == "vm2")
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(vm.node == "vm2" for vm in qemu.running_vms(lab.name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    changes = api.plan(lab, ovsdb=ovs.remote).changes
    assert [(c.action, c.key) for c in changes] == [(Action.CREATE, ("vm", "vm2"))]
    api.apply(lab, ovsdb=ovs.remote)
    again = next(vm for vm in qemu.running_vms(lab.name) if vm.node == "vm2")
    assert again.pid != victim.pid
    assert api.verify(lab, ovsdb=ovs.remote).ok


def test_destroy_leaves_no_qemu_tap_or_run_dir(ovs: PrivateOvs, labs: Labs) -> None:
    files, lab = labs.up(QUICKSTART.replace("  vm2: {kind: vm, image: tiny, memory: 128}\n", "")
                         .replace("  - {endpoints: [vm2:eth0, $b1], vlan: 10, network: lan10}\n", "")
                         .replace("  - {from: vm1, to: vm2}\n", "")
                         .replace("  - {from: vm1, to: vm2, proto: tcp}\n", "")
                         .replace("  - {from: vm2, to: h1}\n", ""), "vmd")
    assert len(qemu.running_vms(lab.name)) == 2
    taps = [link["ifname"] for link in ip_json("link", "show", "type", "tun")
            if link.get("ifalias", "").startswith(f"vnet:{lab.name}:")]
    assert len(taps) == 2
    done = vnet("destroy", "--lab", lab.name, env={"VNET_OVSDB": ovs.remote})
    assert done.returncode == 0, done.stderr
    assert _vm_leftovers(lab.name) == []
    assert not [t for t in taps if Path(f"/sys/class/net/{t}").exists()]
    assert kernel_leftovers(files) == []

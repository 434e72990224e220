"""VM nodes compile to Vm resources whose QEMU command line carries everything (no host needed)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from vnet.errors import UnavailableError
from vnet.mechanisms.base import HostFacts
from vnet.mechanisms.kernel.resources import Tap
from vnet.mechanisms.qemu import process as qemu
from vnet.mechanisms.qemu.compile import VmFacts
from vnet.mechanisms.qemu.resources import Vm
from vnet.pipeline.compile import compile_lab
from vnet.pipeline.plan import make_plan
from vnet.resources import Action, DesiredState, ObservedState
from vnet.topology import Lab, load

FACTS = HostFacts((VmFacts("/usr/bin/qemu-system-x86_64", kvm=False, vhost_net=True,
                             tiny_kernel="/cache/k", tiny_initrd="/cache/i"),))

LAB = """
name: vmc
switches:
  s1: {type: linux}
nodes:
  vm1: {kind: vm, memory: 96, vcpus: 2, routes: [{to: default, via: 198.18.0.254}], forwarding: true}
  vm2: {kind: vm}
links:
  - {endpoints: [vm1:eth0, s1], ip: 198.18.0.1/24}
  - {endpoints: [vm1:eth1, vm2:eth0], ip: [198.18.1.1/30, 198.18.1.2/30], mtu: 9000}
"""


def loads(text: str, tmp: Path) -> Lab:
    path = tmp / f"lab{len(list(tmp.iterdir()))}.yaml"
    path.write_text(text)
    return load(str(path))


def _vm(desired: DesiredState, node: str) -> Vm:
    vm = desired.resources[("vm", node)]
    assert isinstance(vm, Vm)
    return vm


def _option(argv: tuple[str, ...], name: str) -> list[str]:
    return [value for option, value in itertools.pairwise(argv) if option == name]


def test_vm_argv_has_taps_macs_memory_and_the_guest_config(tmp_path: Path) -> None:
    lab = loads(LAB, tmp_path)
    desired = compile_lab(lab, FACTS)
    vm = _vm(desired, "vm1")
    argv = vm.argv
    assert argv[0] == "/usr/bin/qemu-system-x86_64"
    assert _option(argv, "-name") == ["guest=vnet:vmc:vm1,process=qemu-vm1"]
    assert _option(argv, "-m") == ["96"] and _option(argv, "-smp") == ["2"]
    assert _option(argv, "-accel") == ["tcg"]
    taps = [r for r in desired.resources.values() if isinstance(r, Tap)]
    mine = sorted((t for t in taps if t.end.alias.startswith("vnet:vmc:vm1:")), key=lambda t: t.end.alias)
    assert vm.depends_on() == tuple(t.key for t in mine)
    netdevs = _option(argv, "-netdev")
    assert [f"ifname={t.end.name}" in n and "vhost=on" in n for t, n in zip(mine, netdevs, strict=True)]
    macs = {i.name: i.mac for i in lab.interfaces_of("vm1")}
    devices = _option(argv, "-device")
    assert all(any(f"mac={mac}" in d for d in devices) for mac in macs.values())
    assert all(t.end.mac not in " ".join(devices) for t in mine), "the guest MAC is not the TAP's"
    append = _option(argv, "-append")[0]
    for expected in ("198.18.0.1/24", "198.18.1.1/30", "198.18.0.254", macs["eth0"]):
        assert expected in append
    assert qemu.tap_names(argv) == tuple(t.end.name for t in mine)
    assert vm.ready_wait


def test_changing_a_vm_restarts_it_and_nothing_else(tmp_path: Path) -> None:
    before = compile_lab(loads(LAB, tmp_path), FACTS)
    after = compile_lab(loads(LAB.replace("memory: 96", "memory: 128"), tmp_path), FACTS)
    observed = ObservedState("vmc", dict(before.resources), {}, {})
    changes = make_plan(after, observed).changes
    restart = [(Action.DELETE, ("vm", "vm1")), (Action.CREATE, ("vm", "vm1"))]
    assert [(c.action, c.key) for c in changes] == restart
    assert make_plan(before, observed).empty


def test_recreating_a_tap_restarts_its_vm(tmp_path: Path) -> None:
    desired = compile_lab(loads(LAB, tmp_path), FACTS)
    observed = dict(desired.resources)
    tap_key = _vm(desired, "vm2").taps[0]
    tap = observed[tap_key]
    assert isinstance(tap, Tap)
    observed[tap_key] = Tap(tap.end, multi_queue=True)  # not changeable in place
    changes = make_plan(desired, ObservedState("vmc", observed, {}, {})).changes
    keys = [(c.action, c.key) for c in changes]
    assert (Action.DELETE, ("vm", "vm2")) in keys and (Action.CREATE, ("vm", "vm2")) in keys
    assert keys.index((Action.DELETE, ("vm", "vm2"))) < keys.index((Action.DELETE, tap_key))
    assert keys.index((Action.CREATE, tap_key)) < keys.index((Action.CREATE, ("vm", "vm2")))


def test_accel_kvm_refused_without_kvm(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError, match="KVM"):
        compile_lab(loads(LAB.replace("vm2: {kind: vm}", "vm2: {kind: vm, accel: kvm}"), tmp_path), FACTS)
    kvm = HostFacts((VmFacts(kvm=True),))
    assert _option(_vm(compile_lab(loads(LAB, tmp_path), kvm), "vm2").argv, "-accel") == ["kvm"]


def test_disk_image_gets_a_snapshot_drive_a_seed_and_qemu_guest_agent(tmp_path: Path) -> None:
    (tmp_path / "img.qcow2").write_bytes(b"QFI\xfb" + bytes(100))
    lab = loads(LAB.replace("vm2: {kind: vm}", "vm2: {kind: vm, image: {disk: img.qcow2}}"), tmp_path)
    vm = _vm(compile_lab(lab, FACTS), "vm2")
    drives = _option(vm.argv, "-drive")
    disk = next(d for d in drives if "img.qcow2" in d)
    assert "format=qcow2" in disk and "snapshot=on" in disk
    seed = next(d for d in drives if "id=vnet-seed" in d)
    assert "readonly=on" in seed and "format=raw" in seed
    assert dict(vm.seed).keys() == {"meta-data", "user-data", "network-config"}
    assert "198.18.1.2/30" in dict(vm.seed)["network-config"]
    assert any("org.qemu.guest_agent.0" in d for d in _option(vm.argv, "-device"))
    assert not vm.ready_wait, "apply does not wait for a disk image's boot"
    changed = loads(LAB.replace("vm2: {kind: vm}", "vm2: {kind: vm, image: {disk: img.qcow2}}")
                    .replace("[198.18.1.1/30, 198.18.1.2/30]", "[198.18.1.2/30, 198.18.1.1/30]"), tmp_path)
    assert _vm(compile_lab(changed, FACTS), "vm2").argv != vm.argv, "a new seed is a new command line"


def test_kernel_image_appends_vnet_parameters_after_the_users(tmp_path: Path) -> None:
    (tmp_path / "bzImage").write_bytes(b"kernel")
    image = "{kernel: bzImage, append: console=ttyS0 quiet}"
    lab = loads(LAB.replace("vm2: {kind: vm}", f"vm2: {{kind: vm, image: {image}}}"), tmp_path)
    argv = _vm(compile_lab(lab, FACTS), "vm2").argv
    assert _option(argv, "-kernel") == [str(tmp_path / "bzImage")]
    append = _option(argv, "-append")[0]
    assert append.startswith("console=ttyS0 quiet ") and "vnet.addr=eth0,198.18.1.2/30" in append


def test_guests_start_together_in_the_last_wave(tmp_path: Path) -> None:
    desired = compile_lab(loads(LAB, tmp_path), FACTS)
    waves = make_plan(desired, ObservedState("vmc", {}, {}, {})).waves
    assert {c.key for c in waves[-1]} == {("vm", "vm1"), ("vm", "vm2")}
    assert all(c.key[0] != "vm" for wave in waves[:-1] for c in wave)

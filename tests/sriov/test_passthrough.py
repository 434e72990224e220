"""VFs for VMs (vfio-pci, the QEMU argument resolved at start and mapped back by observe) and
switchdev representors, through the SR-IOV driver and observe. FAKES: sysfs, netlink, devlink,
clock (tests/sriov/fakes.py); QEMU's launch and /proc are faked where a test says so (no guest
can take a fake PCI address); the representor netdevs are FakeLinks entries in the fake tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from vnet.marks import mark
from vnet.mechanisms import qemu as qemu_mechanism
from vnet.mechanisms import sriov
from vnet.mechanisms.qemu import observe as observe_vm
from vnet.mechanisms.qemu import process as qemu
from vnet.mechanisms.qemu.driver import VmDriver
from vnet.mechanisms.qemu.resources import Vm
from vnet.mechanisms.sriov.driver import SriovDriver
from vnet.mechanisms.sriov.host.errors import SriovError
from vnet.mechanisms.sriov.host.passthrough import resolve_host, symbolic_host
from vnet.mechanisms.sriov.observe import match, observe_sriov
from vnet.mechanisms.sriov.resources import SriovPf, SriovRep, SriovVf, SriovVfio
from vnet.pipeline import session
from vnet.pipeline.plan import make_plan
from vnet.resources import Action, Change, DesiredState, ObservedState, Resource, ResourceKey

from .fakes import FakeLinks
from .rig import PF, Rig

LAB = "pt1"
ARGV = ("qemu-system-x86_64", "-name", f"guest=vnet:{LAB}:vm1,process=qemu-vm1",
        "-device", "virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01,id=nic0",
        *qemu.vfio_args([f"{PF}/vf1"]))


def create(resource: Resource) -> Change:
    return Change(Action.CREATE, resource.key, resource, None, "missing")


def delete(resource: Resource) -> Change:
    return Change(Action.DELETE, resource.key, None, resource, "not in the topology")


def driver(rig: Rig) -> SriovDriver:
    return SriovDriver(LAB, rig.host, FakeLinks(rig.kernel))


def observed(rig: Rig, links: FakeLinks) -> dict[ResourceKey, Resource]:
    """What observe finds of the lab, matched without a desired state (no VF settings)."""
    state = ObservedState(LAB, {})
    match(None, state, observe_sriov(LAB, rig.host, links, []))
    return state.resources


def test_argv_symbolic_to_address_and_back(rig: Rig) -> None:
    rig.host.ensure_pf(PF, 2)
    sysfs = rig.host.sysfs
    started = qemu.map_vfio_hosts(ARGV, lambda host: resolve_host(sysfs, host))
    assert started[-1] == "vfio-pci,host=0000:03:10.1,id=hostdev0" and started[:-1] == ARGV[:-1]
    assert qemu.map_vfio_hosts(started, lambda host: symbolic_host(sysfs, host)) == ARGV
    assert symbolic_host(sysfs, "0000:03:00.0") == "0000:03:00.0"  # the PF itself: not a VF
    with pytest.raises(SriovError, match="vf5 does not exist"):
        resolve_host(sysfs, f"sriov:{PF}/vf5")


def test_vm_driver_starts_qemu_with_the_address(rig: Rig, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """FAKE QEMU launch: start_all records the command lines instead of running QEMU."""
    rig.host.ensure_pf(PF, 2)
    monkeypatch.setattr(qemu, "RUN_ROOT", tmp_path / "run")
    monkeypatch.setattr(sriov, "HOST_FACTORY", lambda: rig.host)
    launched: list[list[str]] = []

    def start_all(argvs: list[tuple[str, ...]]) -> list[str | None]:
        launched.extend(list(argv) for argv in argvs)
        return [None] * len(argvs)

    monkeypatch.setattr(qemu, "start_all", start_all)
    resolve = qemu_mechanism._vfio_hosts(session.Session(), resolve_host)
    good = Vm(LAB, "vm1", ARGV, ready_wait=False)
    bad = Vm(LAB, "vm2", (*ARGV[:-1], f"vfio-pci,host=sriov:{PF}/vf7,id=hostdev0"), ready_wait=False)
    errors = VmDriver(LAB, resolve=resolve).execute([create(good), create(bad)])
    assert errors[0] is None and errors[1] is not None and "vf7 does not exist" in str(errors[1])
    assert launched == [[*ARGV[:-1], "vfio-pci,host=0000:03:10.1,id=hostdev0"]]


def test_observed_vm_argv_is_normalized(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """FAKE /proc: running_vms answers with the command line QEMU was started with."""
    rig.host.ensure_pf(PF, 2)
    monkeypatch.setattr(sriov, "HOST_FACTORY", lambda: rig.host)
    running = qemu.map_vfio_hosts(ARGV, lambda host: resolve_host(rig.host.sysfs, host))
    monkeypatch.setattr(qemu, "running_vms", lambda lab: [qemu.RunningVm(4242, LAB, "vm1", running)])
    want = Vm(LAB, "vm1", ARGV, (("sriov-vfio", f"{PF}/vf1"),))
    normalize = qemu_mechanism._vfio_hosts(session.Session(), symbolic_host)
    found = observe_vm.observe_vms(LAB, normalize)[want.key]
    assert found.argv == want.argv and found.depends_on() == want.depends_on()
    raw = observe_vm.observe_vms(LAB, lambda argv: argv)[want.key]  # without SR-IOV: the address, a restart
    assert raw.argv != want.argv


def test_vfio_bind_observe_release(rig: Rig) -> None:
    pf, vfio = SriovPf(PF, 2), SriovVfio(PF, 1, "2/legacy")
    assert driver(rig).execute([create(pf), create(vfio)]) == [None, None]
    assert rig.kernel.driver("0000:03:10.1") == "vfio-pci" and rig.kernel.driver("0000:03:10.0") == "ixgbevf"
    found = observed(rig, FakeLinks(rig.kernel))
    assert found == {pf.key: pf, vfio.key: vfio}
    assert make_plan(DesiredState(LAB, dict(found)), ObservedState(LAB, found, {}, {})).empty
    assert driver(rig).execute([delete(vfio), delete(pf)]) == [None, None]
    assert rig.kernel.numvfs("0000:03:00.0") == 0 and rig.state.load(LAB, PF) is None


def test_a_change_whose_dependency_failed_is_not_attempted(rig: Rig) -> None:
    pf, vf = SriovPf(PF, 16), SriovVf(PF, 0, "16/legacy", mac="02:00:00:00:00:09")
    errors = driver(rig).execute([create(vf), create(pf)])
    assert errors[1] is not None and "at most 8 VFs" in str(errors[1])  # TooManyVfs, with its fix
    assert "set num_vfs to 8 or fewer" in str(errors[1])
    assert errors[0] is not None and str(errors[0]) == f"not attempted: sriov-pf {PF} failed"
    assert rig.netlink.requests == []


def test_representor_renamed_observed_and_restored(rig: Rig) -> None:
    pf = SriovPf(PF, 2, "switchdev")
    assert driver(rig).execute([create(pf)]) == [None]
    rig.kernel.add_representor(PF, 0, "eth4")  # the NIC's driver makes them with the VFs
    rig.kernel.add_representor(PF, 1, "eth5")
    rep = SriovRep(PF, 0, pf.generation, name="vr0123456789ab", mark=mark(LAB, f"{PF}/vf0", "representor"))
    links = FakeLinks(rig.kernel)
    assert SriovDriver(LAB, rig.host, links).execute([create(rep)]) == [None]
    assert links.calls == [("rename", "eth4", "vr0123456789ab", f"vnet:{LAB}:{PF}/vf0:representor:eth4")]
    assert rig.host.representor(PF, 0) == "vr0123456789ab"
    found = observed(rig, links)
    seen = found[rep.key]
    assert seen == rep and isinstance(seen, SriovRep) and seen.original == "eth4"
    desired = DesiredState(LAB, {pf.key: pf, rep.key: rep})
    assert make_plan(desired, ObservedState(LAB, found, {}, {})).empty
    assert SriovDriver(LAB, rig.host, links).execute([delete(found[rep.key])]) == [None]
    assert links.calls[-1] == ("rename", "vr0123456789ab", "eth4", "")
    assert rig.host.representor(PF, 0) == "eth4"

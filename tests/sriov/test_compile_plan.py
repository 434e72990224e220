"""SR-IOV at plan level: compile_lab + make_plan, no host (no OVS daemon, no SR-IOV hardware).

The reference lab topologies/sriov.yaml: PF and VF resources, a VF moved into a namespace with
its address, a VF passed through to a VM (symbolic vfio-pci argument, no TAP), a switchdev
representor as an OVS port of a bridge asking for hw-offload, and the order the plan puts them in.
"""

from __future__ import annotations

from pathlib import Path

import vnet
from vnet.mechanisms import qemu
from vnet.mechanisms.kernel.resources import Address, Tap
from vnet.mechanisms.ovs.resources import OvsBridge, OvsPort
from vnet.mechanisms.qemu.resources import Vm
from vnet.mechanisms.sriov.notes import notes as sriov_notes
from vnet.mechanisms.sriov.resources import SriovNetdev, SriovPf, SriovRep, SriovVf
from vnet.pipeline.compile import compile_lab
from vnet.pipeline.plan import make_plan
from vnet.pipeline.session import Session
from vnet.resources import Action, Change, DesiredState, ObservedState
from vnet.topology.lab import Lab

REPO = Path(__file__).resolve().parents[2]


def reference() -> tuple[Lab, DesiredState]:
    lab = vnet.load(str(REPO / "topologies" / "sriov.yaml"))
    return lab, compile_lab(lab)


def empty(lab: str) -> ObservedState:
    return ObservedState(lab, {}, {}, {})


def position(changes: tuple[Change, ...], key: tuple[str, str], action: Action = Action.CREATE) -> int:
    return next(i for i, c in enumerate(changes) if c.key == key and c.action is action)


def test_reference_lab_resources() -> None:
    _, desired = reference()
    res = desired.resources
    assert res[("sriov-pf", "enp3s0f0")] == SriovPf("enp3s0f0", 4, "legacy")
    assert res[("sriov-pf", "enp3s0f1")] == SriovPf("enp3s0f1", 2, "switchdev")
    vf0 = res[("sriov-vf", "enp3s0f0/vf0")]
    assert isinstance(vf0, SriovVf) and (vf0.mac, vf0.vlan, vf0.min_tx_rate, vf0.max_tx_rate) == (
        "02:00:00:00:10:00", 100, 100, 1000)
    assert ("sriov-vf", "enp3s0f0/vf3") in res and ("sriov-vf", "enp3s0f0/vf2") not in res
    netdev = res[("sriov-netdev", "enp3s0f0/vf1")]
    assert isinstance(netdev, SriovNetdev)
    assert (netdev.netns, netdev.name, netdev.mark) == ("vnet-sriov-sr-h1", "eth0", "vnet:sriov:sr-h1:eth0")
    address = res[("address", "vnet-sriov-sr-h1/eth0/198.18.100.11/24")]
    assert isinstance(address, Address) and address.device_key == netdev.key
    assert ("sriov-vfio", "enp3s0f0/vf0") in res


def test_vm_gets_the_vf_by_its_symbolic_name_and_no_tap() -> None:
    _, desired = reference()
    vm = desired.resources[("vm", "sr-vm")]
    assert isinstance(vm, Vm)
    assert "vfio-pci,host=sriov:enp3s0f0/vf0,id=hostdev0" in vm.argv
    assert not any(a.startswith("tap,") for a in vm.argv)
    assert vm.depends_on() == (("sriov-vfio", "enp3s0f0/vf0"),)
    taps = [r for r in desired.resources.values() if isinstance(r, Tap)]
    assert not any(tap.end.alias.startswith("vnet:sriov:sr-vm:") for tap in taps)
    # the tiny guest names the NIC by the VF's MAC (the VF's declared one)
    assert "vnet.nic=02:00:00:00:10:00,eth0" in " ".join(vm.argv)


def test_switchdev_representor_is_an_ovs_port_with_hw_offload() -> None:
    lab, desired = reference()
    rep = desired.resources[("sriov-rep", "enp3s0f1/vf0")]
    assert isinstance(rep, SriovRep) and rep.name.startswith("vr") and len(rep.name) == 14
    port = desired.resources[("ovs-port", rep.name)]
    assert isinstance(port, OvsPort) and (port.bridge, port.tag, port.device_key) == ("sd-ovs", 200, rep.key)
    bridge = desired.resources[("ovs-bridge", "sd-ovs")]
    assert isinstance(bridge, OvsBridge) and ("hw-offload", "true") in bridge.other_config
    with Session() as session:  # the VF passed to the tiny VM: the QEMU mechanism's note
        notes = " ".join([*sriov_notes(lab, desired), *qemu.MECHANISM.notes(lab, desired, session)])
    assert "hw-offload=true" in notes and "restart" in notes and "does not" not in notes
    assert "vnet changes neither the host-wide setting nor restarts a system ovs-vswitchd" in notes
    assert "tiny image has virtio drivers only" in notes


def test_plan_order_on_a_fresh_host() -> None:
    _, desired = reference()
    plan = make_plan(desired, empty("sriov"))
    changes = plan.changes
    assert all(c.action is Action.CREATE for c in changes)
    pf = position(changes, ("sriov-pf", "enp3s0f0"))
    vf1 = position(changes, ("sriov-vf", "enp3s0f0/vf1"))
    netdev = position(changes, ("sriov-netdev", "enp3s0f0/vf1"))
    namespace = position(changes, ("netns", "vnet-sriov-sr-h1"))
    address = position(changes, ("address", "vnet-sriov-sr-h1/eth0/198.18.100.11/24"))
    assert pf < vf1 < netdev < address and namespace < netdev
    vfio = position(changes, ("sriov-vfio", "enp3s0f0/vf0"))
    assert position(changes, ("sriov-vf", "enp3s0f0/vf0")) < vfio < position(changes, ("vm", "sr-vm"))
    rep = desired.resources[("sriov-rep", "enp3s0f1/vf0")]
    assert isinstance(rep, SriovRep)
    assert position(changes, ("sriov-pf", "enp3s0f1")) < position(changes, rep.key) \
        < position(changes, ("ovs-port", rep.name))
    assert plan.waves[-1] == (changes[position(changes, ("vm", "sr-vm"))],)


def test_changing_num_vfs_recreates_what_uses_the_vfs_around_an_update(tmp_path: Path) -> None:
    """num_vfs 4 -> 6 goes through 0 in the kernel: the VF's settings and its netdev are recreated,
    taken away before the PF changes and given back after (UPDATE ordering in the plan)."""
    _, desired = reference()
    observed = ObservedState("sriov", dict(desired.resources), {}, {})
    path = tmp_path / "sriov.yaml"
    path.write_text((REPO / "topologies" / "sriov.yaml").read_text().replace("num_vfs: 4", "num_vfs: 6"))
    changes = make_plan(compile_lab(vnet.load(str(path))), observed).changes
    update = position(changes, ("sriov-pf", "enp3s0f0"), Action.UPDATE)
    vfio = ("sriov-vfio", "enp3s0f0/vf0")
    for key in (("sriov-netdev", "enp3s0f0/vf1"), ("sriov-vf", "enp3s0f0/vf1"), vfio):
        assert position(changes, key, Action.DELETE) < update < position(changes, key, Action.CREATE), key
    assert position(changes, ("vm", "sr-vm"), Action.DELETE) < position(changes, vfio, Action.DELETE)
    untouched = {c.key[1] for c in changes if c.key[0].startswith("sriov")}
    assert "enp3s0f1" not in untouched and "enp3s0f1/vf0" not in untouched


def test_unchanged_lab_plans_nothing() -> None:
    _, desired = reference()
    assert make_plan(desired, ObservedState("sriov", dict(desired.resources), {}, {})).empty

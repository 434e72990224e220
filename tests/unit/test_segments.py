"""L2 segments (README, "L2 segments and derived reachability"): access ports, trunks, VLAN-unaware
bridges, PVID, veth, SR-IOV."""

from __future__ import annotations

from pathlib import Path

import vnet
from vnet.topology.segments import Segment, compute_segments


def segments(tmp_path: Path, switches: str, nodes: str, links: str, sriov: str = "") -> list[Segment]:
    text = f"name: seg\n{sriov}switches:\n{switches}nodes:\n{nodes}links:\n{links}"
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    lab = vnet.load(str(path))
    found = compute_segments(lab)
    # Every node interface is on exactly one segment.
    members = [key for s in found for key in s.interfaces]
    assert sorted(members) == sorted(lab.interfaces)
    return found


def groups(found: list[Segment]) -> set[frozenset[str]]:
    """The segments as sets of `node:iface`."""
    return {frozenset(f"{n}:{i}" for n, i in s.interfaces) for s in found}


def segment_of(found: list[Segment], iface: str) -> Segment:
    node, _, name = iface.partition(":")
    return next(s for s in found if (node, name) in s.interfaces)


def hosts(*names: str) -> str:
    return "".join(f"  {n}: {{}}\n" for n in names)


def test_ovs_access_ports_split_by_vlan(tmp_path: Path) -> None:
    found = segments(tmp_path, "  sw1: {type: ovs}\n", hosts("a", "b", "c", "d", "e"),
                     "  - {endpoints: [a:eth0, sw1], vlan: 10}\n"
                     "  - {endpoints: [b:eth0, sw1], vlan: 10}\n"
                     "  - {endpoints: [c:eth0, sw1], vlan: 20}\n"
                     "  - {endpoints: [d:eth0, sw1]}\n"
                     "  - {endpoints: [e:eth0, sw1]}\n")
    assert groups(found) == {frozenset({"a:eth0", "b:eth0"}), frozenset({"c:eth0"}),
                             frozenset({"d:eth0", "e:eth0"})}
    assert segment_of(found, "a:eth0").vlans == (10,)
    assert segment_of(found, "a:eth0").name == "sw1.10"
    assert segment_of(found, "d:eth0").vlans == ()  # untagged
    assert segment_of(found, "d:eth0").name == "sw1"


def test_ovs_trunk_between_two_ovs_switches_carries_only_listed_vlans(tmp_path: Path) -> None:
    found = segments(tmp_path, "  sw1: {type: ovs}\n  sw2: {type: ovs}\n",
                     hosts("a", "b", "c", "d", "e", "f"),
                     "  - {endpoints: [a:eth0, sw1], vlan: 10}\n"
                     "  - {endpoints: [b:eth0, sw2], vlan: 10}\n"
                     "  - {endpoints: [c:eth0, sw1], vlan: 20}\n"
                     "  - {endpoints: [d:eth0, sw2], vlan: 20}\n"
                     "  - {endpoints: [e:eth0, sw1]}\n"
                     "  - {endpoints: [f:eth0, sw2]}\n"
                     "  - {endpoints: [sw1, sw2], trunk: [10]}\n")
    assert groups(found) == {frozenset({"a:eth0", "b:eth0"}), frozenset({"c:eth0"}), frozenset({"d:eth0"}),
                             frozenset({"e:eth0"}), frozenset({"f:eth0"})}
    assert segment_of(found, "a:eth0").domains == (("sw1", 10), ("sw2", 10))


def test_ovs_access_link_between_switches_joins_one_vlan(tmp_path: Path) -> None:
    found = segments(tmp_path, "  sw1: {type: ovs}\n  sw2: {type: ovs}\n", hosts("a", "b", "c"),
                     "  - {endpoints: [a:eth0, sw1], vlan: 10}\n"
                     "  - {endpoints: [b:eth0, sw2], vlan: 10}\n"
                     "  - {endpoints: [c:eth0, sw2], vlan: 20}\n"
                     "  - {endpoints: [sw1, sw2], vlan: 10}\n")
    assert groups(found) == {frozenset({"a:eth0", "b:eth0"}), frozenset({"c:eth0"})}


def test_plain_ovs_to_ovs_link_carries_every_vlan(tmp_path: Path) -> None:
    found = segments(tmp_path, "  sw1: {type: ovs}\n  sw2: {type: ovs}\n", hosts("a", "b", "c", "d"),
                     "  - {endpoints: [a:eth0, sw1], vlan: 10}\n"
                     "  - {endpoints: [b:eth0, sw2], vlan: 10}\n"
                     "  - {endpoints: [c:eth0, sw1]}\n"
                     "  - {endpoints: [d:eth0, sw2]}\n"
                     "  - {endpoints: [sw1, sw2]}\n")
    assert groups(found) == {frozenset({"a:eth0", "b:eth0"}), frozenset({"c:eth0", "d:eth0"})}


def test_ovs_access_port_into_vlan_unaware_bridge_puts_the_bridge_in_that_vlan(tmp_path: Path) -> None:
    found = segments(tmp_path, "  sw1: {type: ovs}\n  br0: {type: linux}\n", hosts("a", "b", "c", "d"),
                     "  - {endpoints: [a:eth0, sw1], vlan: 30}\n"
                     "  - {endpoints: [b:eth0, sw1], vlan: 10}\n"
                     "  - {endpoints: [c:eth0, br0]}\n"
                     "  - {endpoints: [d:eth0, br0]}\n"
                     "  - {endpoints: [sw1, br0], vlan: 30}\n")
    assert groups(found) == {frozenset({"a:eth0", "c:eth0", "d:eth0"}), frozenset({"b:eth0"})}
    assert segment_of(found, "c:eth0").vlans == (30,)
    assert ("br0", None) in segment_of(found, "c:eth0").domains


def test_trunk_into_vlan_unaware_bridge_keeps_its_untagged_nodes_out_of_the_vlans(tmp_path: Path) -> None:
    found = segments(tmp_path, "  sw1: {type: ovs}\n  sw2: {type: ovs}\n  br1: {type: linux}\n",
                     hosts("a", "b", "c", "e"),
                     "  - {endpoints: [a:eth0, sw1], vlan: 10}\n"
                     "  - {endpoints: [b:eth0, sw2], vlan: 10}\n"
                     "  - {endpoints: [c:eth0, sw1], vlan: 20}\n"
                     "  - {endpoints: [e:eth0, br1]}\n"
                     "  - {endpoints: [sw1, br1], trunk: [10, 20]}\n"
                     "  - {endpoints: [br1, sw2], trunk: [10]}\n")
    # Tagged frames cross the unaware bridge unchanged, so VLAN 10 spans sw1, br1 and sw2 ...
    assert groups(found) == {frozenset({"a:eth0", "b:eth0"}), frozenset({"c:eth0"}), frozenset({"e:eth0"})}
    # ... while the bridge's own untagged port is in none of the VLANs.
    assert segment_of(found, "e:eth0").vlans == ()
    assert segment_of(found, "e:eth0").domains == (("br1", None),)


def test_vlan_filtering_bridge_puts_plain_ports_in_pvid_1(tmp_path: Path) -> None:
    found = segments(tmp_path, "  brf: {type: linux, vlan_filtering: true}\n", hosts("f", "g", "h", "i"),
                     "  - {endpoints: [f:eth0, brf]}\n"
                     "  - {endpoints: [g:eth0, brf]}\n"
                     "  - {endpoints: [h:eth0, brf], vlan: 1}\n"
                     "  - {endpoints: [i:eth0, brf], vlan: 10}\n")
    assert groups(found) == {frozenset({"f:eth0", "g:eth0", "h:eth0"}), frozenset({"i:eth0"})}
    assert segment_of(found, "f:eth0").vlans == (1,)
    assert segment_of(found, "f:eth0").name == "brf.1"


def test_vlan_filtering_bridges_trunked_together(tmp_path: Path) -> None:
    found = segments(tmp_path, "  br1: {type: linux, vlan_filtering: true}\n"
                               "  br2: {type: linux, vlan_filtering: true}\n", hosts("a", "b", "c", "d"),
                     "  - {endpoints: [a:eth0, br1], vlan: 10}\n"
                     "  - {endpoints: [b:eth0, br2], vlan: 10}\n"
                     "  - {endpoints: [c:eth0, br1]}\n"
                     "  - {endpoints: [d:eth0, br2]}\n"
                     "  - {endpoints: [br1, br2], trunk: [10]}\n")
    # The trunk carries VLAN 10 only; the PVID-1 ports stay on their own bridge.
    assert groups(found) == {frozenset({"a:eth0", "b:eth0"}), frozenset({"c:eth0"}), frozenset({"d:eth0"})}


def test_node_to_node_links_are_veth_segments(tmp_path: Path) -> None:
    found = segments(tmp_path, "", hosts("a", "b", "c"),
                     "  - {endpoints: [a:eth0, b:eth0]}\n"
                     "  - {endpoints: [b:eth1, c:eth0]}\n")
    assert groups(found) == {frozenset({"a:eth0", "b:eth0"}), frozenset({"b:eth1", "c:eth0"})}
    veth = segment_of(found, "a:eth0")
    assert veth.name == "a:eth0--b:eth0"
    assert veth.domains == ()
    assert not veth.external


def test_legacy_vfs_on_the_same_pf_and_vlan_share_a_segment(tmp_path: Path) -> None:
    found = segments(
        tmp_path, "", hosts("a", "b", "c", "d", "e"),
        "  - {endpoints: ['sriov:pf0/vf0', a:eth0]}\n"
        "  - {endpoints: ['sriov:pf0/vf1', b:eth0]}\n"
        "  - {endpoints: ['sriov:pf0/vf2', c:eth0]}\n"
        "  - {endpoints: ['sriov:pf1/vf0', d:eth0]}\n"
        "  - {endpoints: ['sriov:pf0/vf3', e:eth0]}\n",
        sriov="sriov:\n  pf0: {num_vfs: 4, vfs: {0: {vlan: 10}, 1: {vlan: 10}, 2: {vlan: 20}}}\n"
              "  pf1: {num_vfs: 1, vfs: {0: {vlan: 10}}}\n")
    assert groups(found) == {frozenset({"a:eth0", "b:eth0"}), frozenset({"c:eth0"}),
                             frozenset({"d:eth0"}), frozenset({"e:eth0"})}
    shared = segment_of(found, "a:eth0")
    assert shared.external  # a legacy VF's uplink leaves the lab
    assert shared.name == "sriov:pf0.10"
    assert segment_of(found, "e:eth0").name == "sriov:pf0"  # no VLAN on vf3


def test_switchdev_vf_representor_joins_the_ovs_switch(tmp_path: Path) -> None:
    found = segments(
        tmp_path, "  sw1: {type: ovs}\n", hosts("e", "f") + "  vm1: {kind: vm}\n",
        "  - {endpoints: ['sriov:pf1/vf0', vm1:eth0]}\n"
        "  - {endpoints: ['sriov:pf1/vf0', sw1], vlan: 10}\n"
        "  - {endpoints: [e:eth0, sw1], vlan: 10}\n"
        "  - {endpoints: [f:eth0, sw1]}\n"
        "  - {endpoints: ['sriov:pf1/vf1', f:eth1]}\n",
        sriov="sriov:\n  pf1: {num_vfs: 2, eswitch: switchdev}\n")
    assert groups(found) == {frozenset({"vm1:eth0", "e:eth0"}), frozenset({"f:eth0"}), frozenset({"f:eth1"})}
    assert not segment_of(found, "vm1:eth0").external
    assert segment_of(found, "vm1:eth0").vlans == (10,)

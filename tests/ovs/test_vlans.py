"""VLANs on OVS (userspace datapath): tenants on one bridge, trunks by patch ports, an OVS
access port into a Linux bridge, in-place VLAN updates, tunnels, native VLAN, policing."""

from __future__ import annotations

import json

from ovslib import Labs, PrivateOvs, ip_json, kernel_leftovers, tcp_connects, vnet

from vnet import api
from vnet.mechanisms.kernel import ethtool
from vnet.resources import Action

TENANTS = """
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  red1: {kind: netns}
  red2: {kind: netns}
  blue1: {kind: netns}
  blue2: {kind: netns}
links:
  - {endpoints: [red1:eth0, $b1], vlan: 10, ip: [198.18.1.1/24, "fd00:1::1/64"]}
  - {endpoints: [red2:eth0, $b1], vlan: 10, ip: [198.18.1.2/24, "fd00:1::2/64"]}
  - {endpoints: [blue1:eth0, $b1], vlan: 20, ip: [198.18.1.3/24, "fd00:1::3/64"]}
  - {endpoints: [blue2:eth0, $b1], vlan: 20, ip: [198.18.1.4/24, "fd00:1::4/64"]}
"""


def test_two_tenants_same_subnet_different_vlans(labs: Labs, ovs: PrivateOvs) -> None:
    files, lab = labs.up(TENANTS, "ten")
    bridge = ovs.row("Bridge", files.bridge(1))
    assert bridge["datapath_type"] == "netdev"
    assert bridge["external_ids"]["vnet-lab"] == files.name
    ports = {name: ovs.row("Port", name) for name in ovs.ports(files.bridge(1))}
    assert sorted(ovs.one(p["tag"]) for p in ports.values()) == [10, 10, 20, 20]

    report = api.verify(lab, ovsdb=ovs.remote)
    assert report.ok, report.to_json()
    kept_apart = [o for o in report.outcomes if not o.probe.reach]
    reached = [o for o in report.outcomes if o.probe.reach]
    assert kept_apart and reached, "the derived matrix has pairs that must reach and pairs that must not"
    assert {(o.probe.source, o.probe.target) for o in reached} >= {("red1", "red2"), ("blue1", "blue2")}
    assert ("red1", "blue1") in {(o.probe.source, o.probe.target) for o in kept_apart}

    # The same, by hand, with TCP instead of vnet's ICMP probes.
    assert tcp_connects(files.namespace("red1"), files.namespace("red2"), "198.18.1.2")
    assert tcp_connects(files.namespace("blue2"), files.namespace("blue1"), "198.18.1.3")
    assert not tcp_connects(files.namespace("red1"), files.namespace("blue1"), "198.18.1.3", timeout=2)
    assert not tcp_connects(files.namespace("blue2"), files.namespace("red2"), "198.18.1.2", timeout=2)


TRUNK = """
name: $lab
switches:
  $b1: {type: ovs}
  $b2: {type: ovs}
nodes:
  l10: {kind: netns}
  l20: {kind: netns}
  r10: {kind: netns}
  r20: {kind: netns}
links:
  - {endpoints: [l10:eth0, $b1], vlan: 10, ip: 198.18.2.1/24}
  - {endpoints: [l20:eth0, $b1], vlan: 20, ip: 198.18.2.2/24}
  - {endpoints: [$b1, $b2], trunk: [10, 20]}
  - {endpoints: [r10:eth0, $b2], vlan: 10, ip: 198.18.2.3/24}
  - {endpoints: [r20:eth0, $b2], vlan: 20, ip: 198.18.2.4/24}
"""


def test_trunk_between_ovs_bridges_by_patch_ports(labs: Labs, ovs: PrivateOvs) -> None:
    files, lab = labs.up(TRUNK, "trk")
    patches = {}
    for bridge in (files.bridge(1), files.bridge(2)):
        for name in ovs.ports(bridge):
            interface = ovs.row("Interface", name)
            if interface["type"] == "patch":
                patches[bridge] = (ovs.row("Port", name), interface)
    assert set(patches) == {files.bridge(1), files.bridge(2)}, "one patch port on each bridge"
    (port1, if1), (port2, if2) = patches[files.bridge(1)], patches[files.bridge(2)]
    assert if1["options"] == {"peer": if2["name"]} and if2["options"] == {"peer": if1["name"]}
    for port, interface in ((port1, if1), (port2, if2)):
        assert sorted(port["trunks"]) == [10, 20]
        assert ovs.one(port["vlan_mode"]) == "trunk"
        assert ovs.one(port["tag"]) is None
        assert ovs.one(interface["ofport"]) > 0 and not ovs.one(interface["error"])
        assert interface["external_ids"]["vnet-lab"] == files.name

    report = api.verify(lab, ovsdb=ovs.remote)
    assert report.ok, report.to_json()
    pairs = {(o.probe.source, o.probe.target): o.probe.reach for o in report.outcomes}
    assert pairs.get(("l10", "r10")) is True or pairs.get(("r10", "l10")) is True
    assert pairs.get(("l10", "r20")) is False or pairs.get(("r20", "l10")) is False
    assert tcp_connects(files.namespace("l20"), files.namespace("r20"), "198.18.2.4")
    assert not tcp_connects(files.namespace("l10"), files.namespace("r20"), "198.18.2.4", timeout=2)


OVS_TO_LINUX = """
name: $lab
switches:
  $b1: {type: ovs}
  $b2: {type: linux}
nodes:
  o10: {kind: netns}
  o20: {kind: netns}
  o21: {kind: netns}
  lin: {kind: netns}
links:
  - {endpoints: [o10:eth0, $b1], vlan: 10, ip: 198.18.3.1/24}
  - {endpoints: [o20:eth0, $b1], vlan: 20, ip: 198.18.3.2/24}
  - {endpoints: [o21:eth0, $b1], vlan: 20, ip: 198.18.3.4/24}  # o20's peer: its positive control
  - {endpoints: [$b1, $b2], vlan: 10}
  - {endpoints: [lin:eth0, $b2], ip: 198.18.3.3/24}
"""


def test_ovs_access_port_into_linux_bridge(labs: Labs, ovs: PrivateOvs) -> None:
    files, lab = labs.up(OVS_TO_LINUX, "olx")
    links = {link["ifname"]: link for link in ip_json("-d", "link", "show")}
    assert links[files.bridge(2)]["linkinfo"]["info_kind"] == "bridge"
    ovs_ports = set(ovs.ports(files.bridge(1)))
    # The Linux bridge has two ports: lin's host end, and the veth whose peer is an OVS port.
    on_linux = [name for name, link in links.items() if link.get("master") == files.bridge(2)]
    assert len(on_linux) == 2, on_linux
    joined = [name for name in on_linux if links[name].get("link") in ovs_ports]
    assert len(joined) == 1, (on_linux, ovs_ports)
    linux_end = links[joined[0]]
    assert linux_end["linkinfo"]["info_kind"] == "veth"
    ovs_end = linux_end["link"]  # the veth peer, in the host namespace too
    assert ovs.one(ovs.row("Port", ovs_end)["tag"]) == 10
    assert ovs.row("Interface", ovs_end)["type"] == ""  # a system port: the kernel veth
    with ethtool.control_socket() as sock:  # netdev bridge: the non-OVS end checksums in software
        assert not ethtool.tx_checksum(sock, joined[0])

    report = api.verify(lab, ovsdb=ovs.remote)
    assert report.ok, report.to_json()
    assert tcp_connects(files.namespace("lin"), files.namespace("o10"), "198.18.3.1")
    assert not tcp_connects(files.namespace("lin"), files.namespace("o20"), "198.18.3.2", timeout=2)


ONE_TAG = """
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], vlan: $tag, ip: 198.18.4.1/24}
  - {endpoints: [h2:eth0, $b1], vlan: 10, ip: 198.18.4.2/24}
"""


def test_vlan_tag_change_is_an_in_place_update(labs: Labs, ovs: PrivateOvs) -> None:
    files, _ = labs.up(ONE_TAG, "upd", tag="10")
    before = {name: ovs.row("Port", name) for name in ovs.ports(files.bridge(1))}
    changed = files.load(files.write(ONE_TAG, "changed.yaml", tag="30"))

    plan = api.plan(changed, ovsdb=ovs.remote)
    assert [(c.action, c.key[0]) for c in plan.changes] == [(Action.UPDATE, "ovs-port")], plan.to_json()
    name = plan.changes[0].key[1]
    assert ovs.one(before[name]["tag"]) == 10

    api.apply(changed, ovsdb=ovs.remote)
    after = {n: ovs.row("Port", n) for n in ovs.ports(files.bridge(1))}
    assert ovs.one(after[name]["tag"]) == 30
    assert {n: r["_uuid"] for n, r in after.items()} == {n: r["_uuid"] for n, r in before.items()}, \
        "same Port rows (updated in place, not recreated)"
    assert api.plan(changed, ovsdb=ovs.remote).empty


PORT_KINDS = """
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  trk: {kind: netns}
  pol: {kind: netns}
links:
  - {endpoints: [$b1, "vxlan:198.19.0.2"], key: 5001}
  - {endpoints: [$b1, "geneve:198.19.0.3"], key: 5002, trunk: [10, 20]}
  - {endpoints: [trk:eth0, $b1], trunk: [10, 20], native_vlan: 10, ip: 198.18.5.1/24}
  - endpoints: [pol:eth0, $b1]
    vlan: 20
    ip: 198.18.5.2/24
    police: {rate: 10000, burst: 1000}
"""


def test_tunnels_native_vlan_and_policing(labs: Labs, ovs: PrivateOvs) -> None:
    files, lab = labs.up(PORT_KINDS, "knd")
    interfaces = {n: ovs.row("Interface", n) for n in ovs.ports(files.bridge(1))}
    ports = {n: ovs.row("Port", n) for n in interfaces}
    for name, interface in interfaces.items():
        assert ovs.one(interface["ofport"]) > 0, f"{name} has no OpenFlow port: {interface['error']}"
        assert not ovs.one(interface["error"]), interface["error"]

    by_type = {i["type"]: n for n, i in interfaces.items()}
    vxlan, geneve = interfaces[by_type["vxlan"]], interfaces[by_type["geneve"]]
    assert vxlan["options"] == {"key": "5001", "remote_ip": "198.19.0.2"}
    assert geneve["options"] == {"key": "5002", "remote_ip": "198.19.0.3"}
    assert sorted(ports[by_type["geneve"]]["trunks"]) == [10, 20]

    native = [p for p in ports.values() if ovs.one(p["vlan_mode"]) == "native-untagged"]
    assert len(native) == 1
    assert ovs.one(native[0]["tag"]) == 10 and sorted(native[0]["trunks"]) == [10, 20]

    policed = [i for i in interfaces.values() if i["ingress_policing_rate"]]
    assert len(policed) == 1
    assert (policed[0]["ingress_policing_rate"], policed[0]["ingress_policing_burst"]) == (10000, 1000)
    assert ovs.one(ports[policed[0]["name"]]["tag"]) == 20
    assert api.plan(lab, ovsdb=ovs.remote).empty


def test_plan_says_the_datapath_resolved_to_netdev(labs: Labs, ovs: PrivateOvs) -> None:
    files = labs.new("dp")
    path = files.write(ONE_TAG, tag="10")
    done = vnet("plan", str(path), "--ovsdb", ovs.remote)
    assert done.returncode == 0, done.stderr
    assert f"OVS bridge {files.bridge(1)}: datapath netdev" in done.stdout, done.stdout
    assert "userspace" in done.stdout
    by_env = vnet("plan", str(path), "--json", env={"VNET_OVSDB": ovs.remote})  # no --ovsdb
    assert by_env.returncode == 0, by_env.stderr
    notes = json.loads(by_env.stdout)["notes"]
    assert f"OVS bridge {files.bridge(1)}: datapath netdev" in " ".join(notes), notes
    plan = api.plan(files.load(path), ovsdb=ovs.remote)
    assert any("datapath netdev" in note for note in plan.notes), plan.notes
    assert files.bridge(1) not in ovs.bridges(), "plan changes nothing"
    assert ovs.lab_rows(files.name) == [] and kernel_leftovers(files) == []

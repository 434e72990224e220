"""Drift on OVS, made by hand with ovs-vsctl: plan shows each change, apply repairs each."""

from __future__ import annotations

from ovslib import Labs, PrivateOvs

from vnet import api
from vnet.mechanisms.ovs.resources import OvsPort
from vnet.pipeline.compile import compile_lab
from vnet.resources import Action
from vnet.topology import Lab

THREE_PORTS = """
name: $lab
switches:
  $b1: {type: ovs, other_config: {mac-aging-time: "300"}}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], vlan: 10, ip: 198.18.6.1/24}
  - {endpoints: [h2:eth0, $b1], vlan: 10, ip: 198.18.6.2/24}
  - {endpoints: [h3:eth0, $b1], vlan: 10, ip: 198.18.6.3/24}
  - {endpoints: [$b1, "vxlan:198.19.6.1"], key: 66}
"""


def port_of_link(lab: Lab, index: int) -> str:
    """The OVS port name vnet gives the switch end of links[index]."""
    ports = [r for r in compile_lab(lab).resources.values() if isinstance(r, OvsPort) and r.link == index]
    assert len(ports) == 1, ports
    return ports[0].name


def test_hand_made_drift_is_planned_and_repaired(labs: Labs, ovs: PrivateOvs) -> None:
    files, lab = labs.up(THREE_PORTS, "dft")
    bridge = files.bridge(1)
    gone, retagged, tunnel = port_of_link(lab, 0), port_of_link(lab, 1), port_of_link(lab, 3)
    kept = port_of_link(lab, 2)
    kept_uuid = ovs.row("Port", kept)["_uuid"]
    assert api.plan(lab, ovsdb=ovs.remote).empty

    ovs.vsctl("del-port", bridge, gone)
    ovs.vsctl("set", "Port", retagged, "tag=99")
    ovs.vsctl("set", "Interface", tunnel, "options:stale=yes")
    ovs.vsctl("set", "Bridge", bridge, "other_config:stale-key=1")

    plan = api.plan(lab, ovsdb=ovs.remote)
    found = {(c.action, c.key[0], c.key[1]): c.reason for c in plan.changes}
    assert set(found) == {
        (Action.CREATE, "ovs-port", gone),
        (Action.UPDATE, "ovs-port", retagged),
        (Action.UPDATE, "ovs-port", tunnel),
        (Action.UPDATE, "ovs-bridge", bridge),
    }, plan.to_json()
    assert "tag" in found[(Action.UPDATE, "ovs-port", retagged)]
    assert "options" in found[(Action.UPDATE, "ovs-port", tunnel)]
    assert "other_config" in found[(Action.UPDATE, "ovs-bridge", bridge)]

    api.apply(lab, ovsdb=ovs.remote)
    assert gone in ovs.ports(bridge)
    assert ovs.one(ovs.row("Port", gone)["tag"]) == 10
    assert ovs.one(ovs.row("Interface", gone)["ofport"]) > 0
    assert ovs.one(ovs.row("Port", retagged)["tag"]) == 10
    assert ovs.row("Interface", tunnel)["options"] == {"key": "66", "remote_ip": "198.19.6.1"}
    assert ovs.row("Bridge", bridge)["other_config"] == {"mac-aging-time": "300"}, "stale key removed"
    assert ovs.row("Port", kept)["_uuid"] == kept_uuid, "an untouched port is left alone"
    assert api.plan(lab, ovsdb=ovs.remote).empty
    report = api.verify(lab, ovsdb=ovs.remote)
    assert report.ok, report.to_json()

"""`attach: internal`: OVS internal ports moved into netns nodes, beside a node attached by veth.

The device of an internal port is made by ovs-vswitchd (a TAP on the userspace datapath) in the
host namespace; vnet moves it into the node's namespace under the interface's name.
"""

from __future__ import annotations

from ovslib import Labs, PrivateOvs, ip_json, run, wait_for

from vnet import api
from vnet.mechanisms.ovs.resources import OvsInternal
from vnet.pipeline.compile import compile_lab
from vnet.resources import Action
from vnet.topology import Lab

INTERNAL = """
name: $lab
switches:
  $b1: {type: ovs}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], attach: internal, vlan: 10, ip: [198.18.7.1/24, "fd00:7::1/64"], mtu: 1400}
  - {endpoints: [h2:eth0, $b1], attach: internal, vlan: 10, ip: 198.18.7.2/24}
  - {endpoints: [h3:eth0, $b1], vlan: 10, ip: 198.18.7.3/24}
"""


def internal_ports(lab: Lab) -> dict[str, OvsInternal]:
    """node -> its moved device, as compiled."""
    found = [r for r in compile_lab(lab).resources.values() if isinstance(r, OvsInternal)]
    return {r.end.netns.rsplit("-", 1)[1]: r for r in found}


def device(namespace: str, name: str) -> dict[str, object] | None:
    links = [link for link in ip_json("-d", "link", "show", netns_name=namespace) if link["ifname"] == name]
    return links[0] if links else None


def test_internal_ports_apply_verify_drift_destroy(labs: Labs, ovs: PrivateOvs) -> None:
    files, lab = labs.up(INTERNAL, "int")
    bridge = files.bridge(1)
    moved = internal_ports(lab)
    assert set(moved) == {"h1", "h2"}
    host_names = {link["ifname"] for link in ip_json("link", "show")}
    for node, want in moved.items():
        dev = device(files.namespace(node), "eth0")
        assert dev is not None, f"{node}: eth0 missing"
        assert dev["ifalias"] == f"vnet:{files.name}:{node}:eth0"
        assert dev["address"] == want.end.mac
        assert dev["linkinfo"]["info_kind"] == "tun", "the userspace datapath's internal port is a TAP"
        assert want.port not in host_names, "moved out of the host namespace"
        interface = ovs.row("Interface", want.port)
        assert interface["type"] == "internal" and ovs.one(interface["ofport"]) > 0
        assert ovs.one(ovs.row("Port", want.port)["tag"]) == 10
    assert device(files.namespace("h1"), "eth0")["mtu"] == 1400  # type: ignore[index]
    assert device(files.namespace("h3"), "eth0")["linkinfo"]["info_kind"] == "veth"  # type: ignore[index]

    assert api.apply(lab, ovsdb=ovs.remote).plan.empty, "re-apply changes nothing"
    report = api.verify(lab, ovsdb=ovs.remote)
    assert report.ok and len(report.outcomes) >= 6, report.to_json()

    # Drift 1: the device deleted inside the namespace. Only a new port makes vswitchd make a
    # new device: the port is recreated, the device moved in again, its addresses restored.
    h1 = moved["h1"]
    run("ip", "-n", files.namespace("h1"), "link", "del", "eth0")
    plan = api.plan(lab, ovsdb=ovs.remote)
    found = {(c.action, c.key[0], c.key[1]) for c in plan.changes}
    assert {(Action.DELETE, "ovs-port", h1.port), (Action.CREATE, "ovs-port", h1.port),
            (Action.CREATE, "ovs-internal", h1.key[1])} <= found, plan.to_json()
    assert {c.key[0] for c in plan.changes} <= {"ovs-port", "ovs-internal", "address"}, plan.to_json()
    api.apply(lab, ovsdb=ovs.remote)
    assert api.plan(lab, ovsdb=ovs.remote).empty

    # Drift 2: the port deleted with ovs-vsctl: vswitchd deletes its device, wherever it is.
    h2 = moved["h2"]
    ovs.vsctl("del-port", bridge, h2.port)
    wait_for(lambda: device(files.namespace("h2"), "eth0") is None, 5, "the port's device to go")
    plan = api.plan(lab, ovsdb=ovs.remote)
    found = {(c.action, c.key[0], c.key[1]) for c in plan.changes}
    address = f"{files.namespace('h2')}/eth0/198.18.7.2/24"
    assert found == {(Action.CREATE, "ovs-port", h2.port), (Action.CREATE, "ovs-internal", h2.key[1]),
                     (Action.CREATE, "address", address)}, plan.to_json()
    api.apply(lab, ovsdb=ovs.remote)
    assert api.plan(lab, ovsdb=ovs.remote).empty
    report = api.verify(lab, ovsdb=ovs.remote)
    assert report.ok, report.to_json()

    # Destroy: no rows, no bridge (the fixture checks that no device or namespace is left).
    api.destroy(files.name, ovsdb=ovs.remote)
    assert ovs.lab_rows(files.name) == []
    assert bridge not in ovs.bridges()

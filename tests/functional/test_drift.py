"""Drift: objects changed or removed by hand are shown by `plan`, repaired by `apply`, then verified."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from vnet import api
from vnet.marks import host_name
from vnet.topology import Lab

from .conftest import Labs
from .hostlib import LabUnderTest, ip_json, namespace_names, run, vnet, wait_for

pytestmark = pytest.mark.root

DRIFT = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns, routes: [{to: 198.18.99.0/24, via: 198.18.10.3}]}
  r1: {kind: netns, forwarding: true}
  t1: {kind: tap}
  h3: {kind: netns}
links:
  - endpoints: [h1:eth0, $b1]
    ip: [198.18.10.1/24, "fd00:10::1/64"]
    mtu: 1400
  - endpoints: [h2:eth0, $b1]
    ip: 198.18.10.2/24
    mtu: 1400
  - endpoints: [r1:eth0, $b1]
    ip: 198.18.10.3/24
    mtu: 1400
  - endpoints: [t1:eth0, $b1]
    mtu: 1400
  - endpoints: [h3:eth0, h1:eth1]
    ip: [198.18.11.1/30, 198.18.11.2/30]
"""

Change = tuple[str, str, str]  # (action, kind, name) as `vnet plan --json` shows it


def _veth(lab: LabUnderTest, node: str) -> str:
    return f"{lab.namespace(node)}/eth0"


def _address(lab: LabUnderTest, node: str, cidr: str) -> str:
    return f"{lab.namespace(node)}/eth0/{cidr}"


def delete_veth(lab: LabUnderTest) -> set[Change]:
    run("ip", "link", "del", lab.host_end("h1", "eth0"))
    return {("create", "veth", _veth(lab, "h1")),
            ("create", "address", _address(lab, "h1", "198.18.10.1/24")),
            ("create", "address", _address(lab, "h1", "fd00:10::1/64"))}


def change_mtu_inside(lab: LabUnderTest) -> set[Change]:
    run("ip", "-n", lab.namespace("h1"), "link", "set", "eth0", "mtu", "1300")
    return {("update", "veth", _veth(lab, "h1"))}


def change_mtu_host_end(lab: LabUnderTest) -> set[Change]:
    run("ip", "link", "set", lab.host_end("h2", "eth0"), "mtu", "1280")
    return {("update", "veth", _veth(lab, "h2"))}


def set_link_down(lab: LabUnderTest) -> set[Change]:
    run("ip", "link", "set", lab.host_end("r1", "eth0"), "down")
    return {("update", "veth", _veth(lab, "r1"))}


def delete_address(lab: LabUnderTest) -> set[Change]:
    run("ip", "-n", lab.namespace("h1"), "addr", "del", "198.18.10.1/24", "dev", "eth0")
    return {("create", "address", _address(lab, "h1", "198.18.10.1/24"))}


def add_addresses(lab: LabUnderTest) -> set[Change]:
    for cidr in ("198.18.10.99/24", "fd00:10::99/64"):
        run("ip", "-n", lab.namespace("h2"), "addr", "add", cidr, "dev", "eth0")
    return {("delete", "address", _address(lab, "h2", "198.18.10.99/24")),
            ("delete", "address", _address(lab, "h2", "fd00:10::99/64"))}


def delete_namespace(lab: LabUnderTest) -> set[Change]:
    run("ip", "netns", "del", lab.namespace("h2"))
    # The kernel frees the namespace, its veth end and the host end asynchronously.
    host_end = lab.host_end("h2", "eth0")
    wait_for(lambda: host_end not in {link["ifname"] for link in ip_json("link", "show")},
             what="the host end of the deleted namespace's veth to go")
    return {("create", "netns", lab.namespace("h2")),
            ("create", "veth", _veth(lab, "h2")),
            ("create", "address", _address(lab, "h2", "198.18.10.2/24")),
            ("create", "route", f"{lab.namespace('h2')}/198.18.99.0/24")}


def delete_route(lab: LabUnderTest) -> set[Change]:
    run("ip", "-n", lab.namespace("h2"), "route", "del", "198.18.99.0/24")
    return {("create", "route", f"{lab.namespace('h2')}/198.18.99.0/24")}


def set_stp(lab: LabUnderTest) -> set[Change]:
    run("ip", "link", "set", lab.bridge(1), "type", "bridge", "stp_state", "1")
    return {("update", "bridge", lab.bridge(1))}


def forwarding_off(lab: LabUnderTest) -> set[Change]:
    run("ip", "netns", "exec", lab.namespace("r1"), "sysctl", "-qw", "net.ipv4.ip_forward=0")
    return {("update", "netns", lab.namespace("r1"))}


def delete_bridge(lab: LabUnderTest) -> set[Change]:
    run("ip", "link", "del", lab.bridge(1))
    return {("create", "bridge", lab.bridge(1)), ("update", "tap", _tap(lab)),
            *{("update", "veth", _veth(lab, node)) for node in ("h1", "h2", "r1")}}


def _tap(lab: LabUnderTest) -> str:
    return host_name("vt", lab.name, "t1", "eth0")


def delete_tap(lab: LabUnderTest) -> set[Change]:
    run("ip", "tuntap", "del", "dev", _tap(lab), "mode", "tap")
    return {("create", "tap", _tap(lab))}


def tap_mtu(lab: LabUnderTest) -> set[Change]:
    run("ip", "link", "set", _tap(lab), "mtu", "1300")
    return {("update", "tap", _tap(lab))}


def leave_bridge(lab: LabUnderTest) -> set[Change]:
    run("ip", "link", "set", lab.host_end("h2", "eth0"), "nomaster")
    return {("update", "veth", _veth(lab, "h2"))}


def change_mac(lab: LabUnderTest) -> set[Change]:
    run("ip", "-n", lab.namespace("h1"), "link", "set", "eth0", "address", "02:00:5e:00:53:01")
    return {("update", "veth", _veth(lab, "h1"))}


def ipv6_forwarding_off(lab: LabUnderTest) -> set[Change]:
    run("ip", "netns", "exec", lab.namespace("r1"), "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0")
    return {("update", "netns", lab.namespace("r1"))}


def isolate_port(lab: LabUnderTest) -> set[Change]:
    run("ip", "link", "set", lab.host_end("h2", "eth0"), "type", "bridge_slave", "isolated", "on")
    return {("update", "veth", _veth(lab, "h2"))}


def learning_off(lab: LabUnderTest) -> set[Change]:
    run("ip", "link", "set", _tap(lab), "type", "bridge_slave", "learning", "off", "flood", "off")
    return {("update", "tap", _tap(lab))}


def mtu_of_a_link_without_mtu(lab: LabUnderTest) -> set[Change]:
    """A link that says no `mtu` has the kernel's 1500, which vnet keeps (h3's link)."""
    run("ip", "-n", lab.namespace("h3"), "link", "set", "eth0", "mtu", "1400")
    return {("update", "veth", _veth(lab, "h3"))}


DRIFTS: dict[str, Callable[[LabUnderTest], set[Change]]] = {
    f.__name__: f for f in (delete_veth, change_mtu_inside, change_mtu_host_end, set_link_down,
                            delete_address, add_addresses, delete_namespace, delete_route, set_stp,
                            forwarding_off, delete_bridge, delete_tap, tap_mtu, leave_bridge,
                            change_mac, ipv6_forwarding_off, isolate_port, learning_off,
                            mtu_of_a_link_without_mtu)}


def _changes(lab: Lab) -> set[Change]:
    return {(c.action.value, *c.key) for c in api.plan(lab).changes}


def _up(labs: Labs) -> tuple[LabUnderTest, Lab]:
    lab = labs.new("dr")
    lab.write(DRIFT)
    loaded = lab.load()
    api.apply(loaded)
    assert api.plan(loaded).empty
    return lab, loaded


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_drift_is_planned_and_repaired(labs: Labs, drift: str) -> None:
    lab, loaded = _up(labs)
    expected = DRIFTS[drift](lab)
    assert _changes(loaded) == expected
    broken = api.verify(loaded)
    assert not broken.ok and {(c.action.value, *c.key) for c in broken.drift} == expected
    report = api.apply(loaded)
    assert {(c.action.value, *c.key) for c in report.plan.changes} == expected
    assert api.plan(loaded).empty
    result = api.verify(loaded)
    assert result.ok, [o.to_json() for o in result.outcomes if not o.ok]


def test_all_drifts_at_once_through_the_cli(labs: Labs) -> None:
    lab, _ = _up(labs)
    path = str(lab.files[-1])
    expected: set[Change] = set()
    for drift in (delete_veth, change_mtu_host_end, add_addresses, delete_route, set_stp, forwarding_off):
        expected |= drift(lab)
    shown = json.loads(vnet("plan", path, "--json", check=True).stdout)
    assert {(c["action"], c["kind"], c["name"]) for c in shown["changes"]} == expected
    status = json.loads(vnet("status", path, "--json", check=True).stdout)
    assert [row["lab"] for row in status] == [lab.name]
    assert {(c["action"], c["kind"], c["name"]) for c in status[0]["drift"]} == expected
    failed = vnet("verify", path, "--json")
    assert failed.returncode == 1 and json.loads(failed.stdout)["drift"]
    repaired = vnet("apply", path, "--verify", "--json")
    assert repaired.returncode == 0, repaired.stderr
    result = json.loads(repaired.stdout)
    assert {(c["action"], c["kind"], c["name"]) for c in result["changes"]} == expected
    assert result["verify"]["ok"] is True
    assert json.loads(vnet("plan", path, "--json", check=True).stdout)["changes"] == []
    assert lab.namespace("h1") in namespace_names()

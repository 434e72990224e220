"""A proof must be able to fail: the lab is broken by hand, and verify exits 1 naming the rows.

Each test applies a small lab, checks verify passes, breaks one real thing the way an
administrator (or a bug) would, and asserts that verify fails on exactly the rows that the break
affects, with a hint that names the cause; then apply repairs what is drift.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from vnet import api
from vnet.topology import Lab

from .conftest import HandMade, Labs
from .hostlib import LabUnderTest, run, vnet

pytestmark = pytest.mark.root

TWO_PATHS = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  a: {kind: netns}
  b: {kind: netns}
links:
  - {endpoints: [a:eth0, $b1], ip: 198.18.30.1/24}
  - {endpoints: [b:eth0, $b1], ip: 198.18.30.2/24}
  - {endpoints: [a:eth1, b:eth1], ip: [198.18.31.1/30, 198.18.31.2/30]}
"""


def _up(labs: Labs, template: str, prefix: str) -> tuple[LabUnderTest, Lab]:
    lab = labs.new(prefix)
    lab.write(template)
    loaded = lab.load()
    api.apply(loaded)
    report = api.verify(loaded)
    assert report.ok, [o.to_json() for o in report.outcomes if not o.ok]
    return lab, loaded


def _failed(loaded: Lab) -> tuple[set[tuple[str, str, str, str]], list[dict[str, Any]]]:
    """(source, target, probe, address) of the failing rows, and their JSON."""
    report = api.verify(loaded, timeout=1.0)
    assert not report.ok
    rows = [o.to_json() for o in report.outcomes if not o.ok]
    shown = {(r["from"], r["to"], r["proto"] if r["size"] is None else f"mtu {r['size']}", r["address"])
             for r in rows}
    return shown, rows


def test_isolated_bridge_ports_fail_the_bridge_rows_not_the_p2p_ones(labs: Labs) -> None:
    """Both hosts share the bridge subnet and a /30: every subnet a pair shares is a row, so
    isolating the bridge ports by hand fails the bridge rows while the /30 still passes."""
    lab, loaded = _up(labs, TWO_PATHS, "iso")
    for node in ("a", "b"):
        run("ip", "link", "set", lab.host_end(node, "eth0"), "type", "bridge_slave", "isolated", "on")
    shown, rows = _failed(loaded)
    assert shown == {(s, t, p, addr) for s, t, addr in (("a", "b", "198.18.30.2"), ("b", "a", "198.18.30.1"))
                     for p in ("icmp", "tcp", "mtu 1500")}
    assert all("ARP" in r["hint"] or "timeout" in r["hint"] or "MTU" in r["hint"] for r in rows), rows
    drift = {c.key for c in api.plan(loaded).changes}
    assert drift == {("veth", f"{lab.namespace(n)}/eth0") for n in ("a", "b")}
    api.apply(loaded)
    assert api.verify(loaded).ok


def test_a_lowered_mtu_fails_the_mtu_row_and_names_the_device(labs: Labs) -> None:
    lab, loaded = _up(labs, TWO_PATHS, "mtu")
    host_end = lab.host_end("b", "eth0")
    run("ip", "link", "set", host_end, "mtu", "1400")
    shown, rows = _failed(loaded)
    # The bridge drops 1500-byte frames towards b (and b's 1500-byte replies leave... but never
    # arrive back through a 1400 port): both directions' MTU rows fail, ICMP and TCP still pass.
    assert shown == {("a", "b", "mtu 1500", "198.18.30.2"), ("b", "a", "mtu 1500", "198.18.30.1")}
    towards_b = next(r for r in rows if r["from"] == "a")
    assert host_end in towards_b["hint"] and "1400" in towards_b["hint"], towards_b
    api.apply(loaded)
    assert api.verify(loaded).ok


ROUTED6 = """
name: $lab
switches:
  $b1: {type: linux}
  $b2: {type: linux}
nodes:
  h1: {kind: netns, routes: [{to: default, via: "fd00:40::fe"}, {to: default, via: 198.18.40.254}]}
  h2: {kind: netns, routes: [{to: default, via: "fd00:41::fe"}, {to: default, via: 198.18.41.254}]}
  r1: {kind: netns, forwarding: true}
links:
  - {endpoints: [h1:eth0, $b1], ip: [198.18.40.1/24, "fd00:40::1/64"]}
  - {endpoints: [r1:eth0, $b1], ip: [198.18.40.254/24, "fd00:40::fe/64"]}
  - {endpoints: [r1:eth1, $b2], ip: [198.18.41.254/24, "fd00:41::fe/64"]}
  - {endpoints: [h2:eth0, $b2], ip: [198.18.41.1/24, "fd00:41::1/64"]}
"""


def test_ipv6_forwarding_off_fails_the_routed_ipv6_rows(labs: Labs) -> None:
    lab, loaded = _up(labs, ROUTED6, "fw6")
    report = api.verify(loaded)
    routed = {(o.probe.source, o.probe.target, o.probe.family) for o in report.outcomes
              if "routed" in o.probe.reason}
    assert routed >= {("h1", "h2", "ipv6"), ("h2", "h1", "ipv6"), ("h1", "h2", "ipv4")}
    run("ip", "netns", "exec", lab.namespace("r1"), "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0")
    shown, _rows = _failed(loaded)
    pairs = (("h1", "h2", "fd00:41::1"), ("h2", "h1", "fd00:40::1"))
    assert shown == {(s, t, p, addr) for s, t, addr in pairs for p in ("icmp", "tcp")}
    assert {c.reason for c in api.plan(loaded).changes} == {"differs: ipv6_forwarding"}
    api.apply(loaded)
    assert api.verify(loaded).ok


SEGMENTS = """
name: $lab
switches:
  $b1: {type: linux}
  $b2: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
  h4: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.50.1/24}
  - {endpoints: [h2:eth0, $b1], ip: 198.18.50.2/24}
  - {endpoints: [h3:eth0, $b2], ip: 198.18.50.3/24}
  - {endpoints: [h4:eth0, $b2], ip: 198.18.50.4/24}
"""


def test_an_isolation_that_really_reaches_fails(labs: Labs, hand: HandMade) -> None:
    """The two bridges joined by hand with a veth of the administrator's: the derived isolation
    rows (ICMP and TCP, both ways) fail with the isolation broken; nothing of the lab drifted."""
    lab, loaded = _up(labs, SEGMENTS, "brk")
    joint = f"{lab.name}j"
    run("ip", "link", "add", f"{joint}a", "type", "veth", "peer", "name", f"{joint}b")
    hand.devices.append(f"{joint}a")
    for end, bridge in ((f"{joint}a", lab.bridge(1)), (f"{joint}b", lab.bridge(2))):
        run("ip", "link", "set", end, "master", bridge, "up")
    shown, rows = _failed(loaded)
    crossing = {(s, t) for s in ("h1", "h2") for t in ("h3", "h4")}
    assert {(s, t) for s, t, _p, _a in shown} == crossing | {(t, s) for s, t in crossing}
    assert {p for _s, _t, p, _a in shown} == {"icmp", "tcp"}
    assert all(r["expected"] in ("isolated", "filtered") and r["observed"] in ("reach", "open") for r in rows)
    assert all("isolation is broken" in r["hint"] for r in rows)
    assert api.plan(loaded).empty  # the lab itself is as the file says: only the proof sees it


LONER = """
name: $lab
switches:
  $b1: {type: linux}
  $b2: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.60.1/24}
  - {endpoints: [h2:eth0, $b1], ip: 198.18.60.2/24}
  - {endpoints: [h3:eth0, $b2], ip: 198.18.60.3/24}
"""


def test_isolation_without_a_passing_control_is_unproven(labs: Labs) -> None:
    """h3 is alone on its segment: its isolation rows have no control and are `unproven`; and
    with h1's link down, h1 reaches nothing: its isolation rows pass vacuously, and are unproven."""
    lab = labs.new("unp")
    lab.write(LONER)
    loaded = lab.load()
    api.apply(loaded)
    report = api.verify(loaded)
    unproven = {(o.probe.source, o.probe.target) for o in report.outcomes if o.observed == "unproven"}
    assert unproven == {("h3", "h1"), ("h3", "h2")}
    assert not report.ok and all(o.ok for o in report.outcomes if o.probe.source != "h3")
    run("ip", "-n", lab.namespace("h1"), "link", "set", "eth0", "down")
    report = api.verify(loaded, timeout=1.0)
    by_source = {(o.probe.source, o.probe.target, o.observed) for o in report.outcomes
                 if o.probe.source == "h1"}
    assert ("h1", "h3", "unproven") in by_source and ("h1", "h2", "isolated") in by_source
    shown = vnet("verify", str(lab.files[-1]), "--json", "--timeout", "1")
    assert shown.returncode == 1
    assert any(p["observed"] == "unproven" and "positive control" in p["hint"]
               for p in json.loads(shown.stdout)["probes"])


def test_a_mixed_mtu_bridge_converges_in_one_apply(labs: Labs) -> None:
    lab = labs.new("mix")
    lab.write("""
name: $lab
switches:
  $b1: {type: linux, mtu: 9000}
nodes: {h1: {}, h2: {}}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.70.1/24, mtu: 9000}
  - {endpoints: [h2:eth0, $b1], ip: 198.18.70.2/24}
""")
    loaded = lab.load()
    assert [d.code for d in loaded.warnings] == ["mtu-mismatch"]
    api.apply(loaded)
    assert api.plan(loaded).empty  # the bridge kept 9000 although a 1500 port joined it
    report = api.verify(loaded)
    assert report.ok, [o.to_json() for o in report.outcomes if not o.ok]
    assert {o.probe.size for o in report.outcomes if o.probe.size} == {1500}  # what both ends allow

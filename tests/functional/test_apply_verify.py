"""apply + verify of several topologies, positive and negative expectations; re-apply = no change."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vnet import api

from .conftest import Labs
from .hostlib import LabUnderTest, ip_json, vnet

pytestmark = pytest.mark.root

LAN = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
links:
  - endpoints: [h1:eth0, $b1]
    ip: 198.18.1.1/24
  - endpoints: [h2:eth0, $b1]
    ip: 198.18.1.2/24
  - endpoints: [h3:eth0, $b1]
    ip: 198.18.1.3/24
"""

TWO_BRIDGES = """
name: $lab
switches:
  $b1: {type: linux, stp: false}
  $b2: {type: linux, ageing_time: 120}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - endpoints: [h1:eth0, $b1]
    ip: 198.18.2.1/24
  - endpoints: [$b1, $b2]
  - endpoints: [h2:eth0, $b2]
    ip: 198.18.2.2/24
"""

ROUTED = """
name: $lab
switches:
  $b1: {type: linux}
  $b2: {type: linux}
nodes:
  h1: {kind: netns, routes: [{to: default, via: 198.18.3.254}]}
  h2: {kind: netns, routes: [{to: 198.18.3.0/24, via: 198.18.4.254, metric: 10}]}
  h3: {kind: netns, routes: [{to: default, via: 198.18.5.1}]}
  r1: {kind: netns, forwarding: true}
links:
  - endpoints: [h1:eth0, $b1]
    ip: 198.18.3.1/24
  - endpoints: [r1:eth0, $b1]
    ip: 198.18.3.254/24
  - endpoints: [r1:eth1, $b2]
    ip: 198.18.4.254/24
  - endpoints: [h2:eth0, $b2]
    ip: 198.18.4.2/24
  - endpoints: [r1:eth2, h3:eth0]
    ip: [198.18.5.1/30, 198.18.5.2/30]
    mtu: 1400
expect:
  - {from: h1, to: h2}
  - {from: h2, to: h1}
  - {from: h3, to: h1}
  - {from: h1, to: r1}
  - {from: h2, to: h3, reach: false}
"""

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
  - endpoints: [h1:eth0, $b1]
    ip: 198.18.6.1/24
  - endpoints: [h2:eth0, $b1]
    ip: 198.18.6.2/24
  - endpoints: [h3:eth0, $b2]
    ip: 198.18.6.3/24
  - endpoints: [h4:eth0, $b2]
    ip: 198.18.6.4/24
"""

DUAL_STACK = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns, routes: [{to: "fd00:77::/64", via: "fd00:76::3"}]}
  h2: {kind: netns}
  h3: {kind: netns, forwarding: true}
  h4: {kind: netns, routes: [{to: default, via: "fd00:77::3"}]}
links:
  - endpoints: [h1:eth0, $b1]
    ip: [198.18.7.1/24, "fd00:76::1/64"]
  - endpoints: [h2:eth0, $b1]
    ip: ["fd00:76::2/64"]
  - endpoints: [h3:eth0, $b1]
    ip: [198.18.7.3/24, "fd00:76::3/64"]
  - endpoints: [h3:eth1, h4:eth0]
    ip: ["fd00:77::3/64", "fd00:77::4/64"]
expect:
  - {from: h1, to: h2}
  - {from: h2, to: h1}
  - {from: h1, to: h3}
  - {from: h3, to: h4}
  - {from: h1, to: h4}
  - {from: h2, to: h4, reach: false}
"""

TOPOLOGIES = {"lan": LAN, "two-bridges": TWO_BRIDGES, "routed": ROUTED, "segments": SEGMENTS,
              "dual-stack": DUAL_STACK}


def _apply_verify(lab: LabUnderTest, template: str, cli: bool = False) -> Any:
    path = lab.write(template)
    loaded = lab.load()
    report = api.apply(loaded)
    assert not report.plan.empty
    result = api.verify(loaded)
    failed = [o.to_json() for o in result.outcomes if not o.ok]
    assert result.ok, (result.drift, failed)
    assert result.outcomes, "verify proved nothing"
    # Re-applying the unchanged file changes nothing: the API plan, apply, and the CLI agree.
    assert api.plan(loaded).changes == ()
    assert api.apply(loaded).plan.empty
    if cli:
        shown = vnet("plan", str(path), "--json", check=True)
        assert json.loads(shown.stdout)["changes"] == []
    return result


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_apply_then_verify(labs: Labs, name: str) -> None:
    lab = labs.new("av")
    result = _apply_verify(lab, TOPOLOGIES[name], cli=name == "lan")
    pairs = {(o.probe.source, o.probe.target, o.probe.reach) for o in result.outcomes}
    if "expect:" not in TOPOLOGIES[name]:  # derived: ICMP, TCP and the segment MTU
        assert {o.probe.what for o in result.outcomes if o.probe.reach} == {"icmp", "tcp/7", "mtu 1500"}
    if name == "lan":  # derived: every pair on the bridge, both ways
        assert pairs == {(a, b, True) for a in ("h1", "h2", "h3") for b in ("h1", "h2", "h3") if a != b}
    if name == "two-bridges":
        assert ("h1", "h2", True) in pairs and ("h2", "h1", True) in pairs
    if name == "segments":  # derived isolation between the two bridges, proven isolated
        isolated = {(o.probe.source, o.probe.target) for o in result.outcomes
                    if not o.probe.reach and o.observed in ("isolated", "filtered")}
        assert isolated == {(a, b) for a in ("h1", "h2") for b in ("h3", "h4")} | {
            (b, a) for a in ("h1", "h2") for b in ("h3", "h4")}
    if name == "dual-stack":
        h2 = ip_json("addr", "show", "dev", "eth0", netns=lab.namespace("h2"))
        assert {a["local"] for a in h2[0]["addr_info"]} >= {"fd00:76::2"}
        reached = {(o.probe.target, str(o.probe.address.ip)) for o in result.outcomes
                   if o.probe.reach and o.observed == "reach"}
        assert {("h4", "fd00:77::4"), ("h2", "fd00:76::2")} <= reached
    if name == "routed":
        eth2 = ip_json("-d", "link", "show", "eth2", netns=lab.namespace("r1"))
        assert eth2[0]["mtu"] == 1400
        routes = ip_json("route", "show", netns=lab.namespace("h2"))
        assert {"dst": "198.18.3.0/24", "gateway": "198.18.4.254", "metric": 10}.items() <= next(
            r for r in routes if r["dst"] == "198.18.3.0/24").items()


def test_listed_expectations_through_the_cli(labs: Labs) -> None:
    """An isolated `reach: false` pair passes; a `reach: true` that cannot work fails with a hint."""
    lab = labs.new("neg")
    path = lab.write(SEGMENTS + """
expect:
  - {from: h1, to: h2}
  - {from: h1, to: h3, reach: false}
  - {from: h4, to: h1}
""")
    applied = vnet("apply", str(path), "--json")
    assert applied.returncode == 0, applied.stderr
    done = vnet("verify", str(path), "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["drift"] == []
    by_pair = {(p["from"], p["to"]): p for p in report["probes"]}
    assert by_pair[("h1", "h2")]["ok"] and by_pair[("h1", "h2")]["observed"] == "reach"
    assert by_pair[("h1", "h3")]["ok"] and by_pair[("h1", "h3")]["observed"] == "isolated"
    failing = [p for p in report["probes"] if not p["ok"]]
    assert [(p["from"], p["to"]) for p in failing] == [("h4", "h1")]
    assert failing[0]["expected"] == "reach" and failing[0]["observed"] == "isolated"
    assert failing[0]["address"] == "198.18.6.1" and failing[0]["family"] == "ipv4"
    assert "198.18.6.1" in failing[0]["hint"] and "ARP" in failing[0]["hint"]
    assert report["summary"] == {"probes": 3, "failed": 1}
    # The table names the failing pair too, and the exit code is the same.
    table = vnet("verify", str(path))
    assert table.returncode == 1
    assert "FAIL" in table.stdout and "2/3 rows hold" in table.stdout


TAP = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  t1: {kind: tap, owner: nobody, group: nogroup, multi_queue: true}
  t2: {kind: tap, owner: 0}
links:
  - endpoints: [h1:eth0, $b1]
    ip: 198.18.8.1/24
  - endpoints: [h2:eth0, $b1]
    ip: 198.18.8.2/24
  - endpoints: [t1:eth0, $b1]
    mtu: 1400
  - endpoints: [t2:eth0, $b1]
"""

IFF_TAP, IFF_MULTI_QUEUE = 0x0002, 0x0100


def _sys(device: str, attribute: str) -> str:
    with open(f"/sys/class/net/{device}/{attribute}") as handle:
        return handle.read().strip()


def test_tap_node_on_a_bridge(labs: Labs) -> None:
    lab = labs.new("tap")
    _apply_verify(lab, TAP, cli=True)
    taps = {link["ifalias"]: link for link in ip_json("-d", "link", "show", "type", "tun")
            if str(link.get("ifalias", "")).startswith(f"vnet:{lab.name}:")}
    assert set(taps) == {f"vnet:{lab.name}:t1:eth0", f"vnet:{lab.name}:t2:eth0"}
    t1, t2 = taps[f"vnet:{lab.name}:t1:eth0"], taps[f"vnet:{lab.name}:t2:eth0"]
    for tap in (t1, t2):
        assert tap["master"] == lab.bridge(1)
        assert tap["linkinfo"]["info_data"]["type"] == "tap"
        assert tap["linkinfo"]["info_data"]["persist"] is True
        assert "UP" in tap["flags"]
    assert t1["mtu"] == 1400
    name1, name2 = t1["ifname"], t2["ifname"]
    assert len(name1) <= 15
    assert _sys(name1, "owner") == "65534" and _sys(name1, "group") == "65534"
    flags = int(_sys(name1, "tun_flags"), 16)
    assert flags & IFF_TAP and flags & IFF_MULTI_QUEUE
    assert _sys(name2, "owner") == "0" and _sys(name2, "group") == "-1"
    assert not int(_sys(name2, "tun_flags"), 16) & IFF_MULTI_QUEUE
    assert _sys(name1, "ifalias") == f"vnet:{lab.name}:t1:eth0"

"""Changing one link touches only that link's objects; every other device keeps its ifindex."""

from __future__ import annotations

from collections.abc import Collection

import pytest

from vnet import api

from .conftest import Labs
from .hostlib import LabUnderTest, ifindexes, ip_json

pytestmark = pytest.mark.root

BASE = """
name: $lab
networks:
  lan: {subnet: 198.18.20.0/24}
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
  h4: {kind: netns, routes: [{to: 198.18.99.0/24, via: 198.18.21.1$metric}]}
expect:
  - {from: h1, to: h2}
  - {from: h2, to: h3}
  - {from: h4, to: h1}
links:
  - endpoints: [h1:eth0, $b1]
    network: lan
    mtu: $mtu
  - endpoints: [h2:eth0, $b1]
    network: lan
  - endpoints: [h3:eth0, $b1]
    ip: $h3
  - endpoints: [h1:eth1, h4:eth0]
    ip: [198.18.21.1/30, 198.18.21.2/30]
"""

ADDED = """
  - endpoints: [h5:eth0, $b1]
    network: lan
  - endpoints: [h3:eth1, h4:eth1]
    ip: ["fd00:22::3/64", "fd00:22::4/64"]
"""


def _write(lab: LabUnderTest, mtu: int = 1500, h3: str = "198.18.20.33/24", extra: str = "",
           metric: int | None = None) -> None:
    text = BASE + extra
    if extra:
        text = text.replace("\nexpect:", "\n  h5: {kind: netns}\nexpect:")
    lab.write(text, mtu=str(mtu), h3=h3, metric="" if metric is None else f", metric: {metric}")


def _step(lab: LabUnderTest, expected: set[tuple[str, str, str]],
          changed_devices: Collection[tuple[str, str]] = ()) -> None:
    """Apply the current file: exactly `expected` changes; no other device gets a new ifindex."""
    loaded = lab.load()
    before = ifindexes(lab)
    report = api.apply(loaded)
    assert {(c.action.value, *c.key) for c in report.plan.changes} == expected
    after = ifindexes(lab)
    kept = {key: index for key, index in before.items() if key not in changed_devices}
    assert {key: after.get(key) for key in kept} == kept
    assert api.plan(loaded).empty
    result = api.verify(loaded)
    assert result.ok, (result.drift, [o.to_json() for o in result.outcomes if not o.ok])


def test_one_link_changes_only_its_objects(labs: Labs) -> None:
    lab = labs.new("inc")
    ns = lab.namespace
    _write(lab)
    api.apply(lab.load())
    addresses = {a["local"] for a in ip_json("addr", "show", "dev", "eth0", netns=ns("h2"))[0]["addr_info"]}
    assert "198.18.20.2" in addresses  # the pool's second address, in file order

    # 1. The MTU of one link: that veth pair is updated in place (same devices).
    _write(lab, mtu=1400)
    _step(lab, {("update", "veth", f"{ns('h1')}/eth0")})
    assert ip_json("link", "show", "eth0", netns=ns("h1"))[0]["mtu"] == 1400
    assert ip_json("link", "show", lab.host_end("h1", "eth0"))[0]["mtu"] == 1400

    # 2. The address of one link: only that address is replaced.
    _write(lab, mtu=1400, h3="198.18.20.44/24")
    _step(lab, {("delete", "address", f"{ns('h3')}/eth0/198.18.20.33/24"),
                ("create", "address", f"{ns('h3')}/eth0/198.18.20.44/24")})

    # 3. Links (and a node) added at the end: only their objects; pool addresses stay put.
    _write(lab, mtu=1400, h3="198.18.20.44/24", extra=ADDED)
    _step(lab, {("create", "netns", ns("h5")),
                ("create", "veth", f"{ns('h5')}/eth0"),
                ("create", "address", f"{ns('h5')}/eth0/198.18.20.3/24"),
                ("create", "veth", f"{ns('h3')}/eth1"),
                ("create", "address", f"{ns('h3')}/eth1/fd00:22::3/64"),
                ("create", "address", f"{ns('h4')}/eth1/fd00:22::4/64")})

    # 4. And removed again: exactly those objects go. (The file no longer names the removed
    # links: vnet pairs their veth ends by the kernel's peer index and deletes each pair once.)
    _write(lab, mtu=1400, h3="198.18.20.44/24")
    gone = {(ns("h5"), "eth0"), (ns("h5"), "lo"), ("", lab.host_end("h5", "eth0")),
            (ns("h3"), "eth1"), (ns("h4"), "eth1")}
    _step(lab, {("delete", "netns", ns("h5")),
                ("delete", "veth", f"{ns('h5')}/eth0"),
                ("delete", "address", f"{ns('h5')}/eth0/198.18.20.3/24"),
                ("delete", "veth", f"{ns('h3')}/eth1"),
                ("delete", "address", f"{ns('h3')}/eth1/fd00:22::3/64"),
                ("delete", "address", f"{ns('h4')}/eth1/fd00:22::4/64")}, gone)

    # 5. A route's metric: the route is replaced, and the old one does not stay behind.
    _write(lab, mtu=1400, h3="198.18.20.44/24", metric=50)
    route = f"{ns('h4')}/198.18.99.0/24"
    _step(lab, {("delete", "route", route), ("create", "route", route)})
    routes = [r for r in ip_json("route", "show", netns=ns("h4")) if r["dst"] == "198.18.99.0/24"]
    assert [(r["gateway"], r.get("metric")) for r in routes] == [("198.18.21.1", 50)]

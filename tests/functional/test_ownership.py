"""Ownership: unowned objects with colliding names are refused and left alone; labs side by side
(even with overlapping node names, or a lab name that is a prefix of another) never touch each other."""

from __future__ import annotations

from typing import Any

import pytest

from vnet import api
from vnet.api import CollisionError
from vnet.errors import EX_UNAVAILABLE

from .conftest import HandMade, Labs
from .hostlib import (
    LabUnderTest,
    differences,
    ifindexes,
    ip_json,
    namespace_names,
    run,
    snapshot,
    unique,
    vnet,
)

pytestmark = pytest.mark.root

PAIR = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - endpoints: [h1:eth0, $b1]
    ip: [198.18.40.1/24, "fd00:40::1/64"]
  - endpoints: [h2:eth0, $b1]
    ip: [198.18.40.2/24, "fd00:40::2/64"]
"""


def _link(name: str, netns: str | None = None) -> dict[str, Any]:
    found: list[dict[str, Any]] = ip_json("-d", "link", "show", name, netns=netns)
    return found[0]


def test_unowned_bridge_with_the_same_name_is_refused(labs: Labs, hand: HandMade) -> None:
    lab = labs.new("col")
    path = str(lab.write(PAIR))
    index = hand.bridge(lab.bridge(1))
    before = snapshot([lab])
    done = vnet("apply", path)
    assert done.returncode == EX_UNAVAILABLE, (done.stdout, done.stderr)
    assert f"device {lab.bridge(1)}: held by something other than vnet" in done.stderr
    # (Only its lock file, /run/vnet/<lab>.lock, may have appeared: no network object.)
    assert not differences(before, snapshot([lab]), run_dir=False), "apply changed something"
    assert not [ns for ns in namespace_names() if ns.startswith(f"vnet-{lab.name}-")]
    bridge = _link(lab.bridge(1))
    assert bridge["ifindex"] == index and not bridge.get("ifalias") and "UP" not in bridge["flags"]
    # plan refuses the same way, and destroy leaves the bridge alone (it is not the lab's).
    assert vnet("plan", path).returncode == EX_UNAVAILABLE
    api.destroy(lab.name)
    assert _link(lab.bridge(1))["ifindex"] == index


def test_unowned_namespace_with_the_same_name_is_refused(labs: Labs, hand: HandMade) -> None:
    lab = labs.new("col")
    path = str(lab.write(PAIR))
    hand.namespace(lab.namespace("h2"))
    lo_before = _link("lo", lab.namespace("h2"))
    before = snapshot([lab])
    done = vnet("apply", path)
    assert done.returncode == EX_UNAVAILABLE, (done.stdout, done.stderr)
    assert f"namespace {lab.namespace('h2')}: held by something other than vnet" in done.stderr
    assert not differences(before, snapshot([lab]), run_dir=False)
    assert [link["ifname"] for link in ip_json("link", "show", netns=lab.namespace("h2"))] == ["lo"]
    assert _link("lo", lab.namespace("h2")) == lo_before
    api.destroy(lab.name)
    assert lab.namespace("h2") in namespace_names()
    # Once the administrator removes it, the lab comes up.
    run("ip", "netns", "del", lab.namespace("h2"))
    api.apply(lab.load())
    assert api.verify(lab.load()).ok


def test_two_labs_side_by_side(labs: Labs) -> None:
    a, b = labs.new("sa"), labs.new("sb")
    for lab in (a, b):  # same node names and the same addresses, different bridges
        lab.write(PAIR)
    api.apply(a.load())
    a_devices = ifindexes(a)
    api.apply(b.load())
    assert ifindexes(a) == a_devices
    assert api.apply(a.load()).plan.empty
    assert api.plan(b.load()).empty
    assert api.verify(a.load()).ok and api.verify(b.load()).ok
    api.destroy(b.name)
    assert not [ns for ns in namespace_names() if ns.startswith(f"vnet-{b.name}-")]
    assert ifindexes(a) == a_devices
    assert api.plan(a.load()).empty
    result = api.verify(a.load())
    assert result.ok and result.outcomes


PREFIX_SHORT = """
name: $lab
nodes:
  c-h1: {kind: netns}
  c-h2: {kind: netns}
links:
  - endpoints: [c-h1:eth0, c-h2:eth0]
    ip: [198.18.41.1/30, 198.18.41.2/30]
"""

PREFIX_LONG = """
name: $lab
nodes:
  h1: {kind: netns}
  h9: {kind: netns}
links:
  - endpoints: [h1:eth0, h9:eth0]
    ip: [198.18.42.1/30, 198.18.42.2/30]
"""


def _prefix_labs(labs: Labs) -> tuple[LabUnderTest, LabUnderTest]:
    short = labs.new(name=unique("p"))
    long = labs.new(name=f"{short.name}-c")
    short.write(PREFIX_SHORT)
    long.write(PREFIX_LONG)
    # Both want namespace vnet-<short>-c-h1.
    assert short.namespace("c-h1") == long.namespace("h1")
    return short, long


@pytest.mark.parametrize("first", ["short", "long"])
def test_lab_name_that_is_a_prefix_of_another(labs: Labs, first: str) -> None:
    short, long = _prefix_labs(labs)
    owner, other = (short, long) if first == "short" else (long, short)
    api.apply(owner.load())
    owned = ifindexes(owner)
    state = snapshot([owner])
    with pytest.raises(CollisionError) as refused:
        api.apply(other.load())
    assert f"namespace {short.namespace('c-h1')}: held by vnet lab `{owner.name}`" in refused.value.message
    assert ifindexes(owner) == owned and not differences(state, snapshot([owner]))
    assert not ifindexes(other), "the refused lab created something"
    # Destroying the other lab (which has nothing) must not take the owner's namespace.
    api.destroy(other.name)
    assert ifindexes(owner) == owned
    assert api.plan(owner.load()).empty
    assert api.verify(owner.load()).ok
    assert api.labs().count(owner.name) == 1 and other.name not in api.labs()


def test_switch_name_held_by_another_lab(labs: Labs) -> None:
    a, b = labs.new("sw"), labs.new("sw")
    a.write(PAIR)
    b.write(PAIR.replace("$b1", a.bridge(1)).replace("198.18.40.", "198.18.43."))  # a's bridge
    api.apply(a.load())
    owned = ifindexes(a)
    done = vnet("apply", str(b.files[-1]))
    assert done.returncode == EX_UNAVAILABLE, (done.stdout, done.stderr)
    assert f"device {a.bridge(1)}: held by vnet lab `{a.name}`" in done.stderr
    assert not ifindexes(b) and ifindexes(a) == owned
    api.destroy(b.name)
    assert ifindexes(a) == owned and api.plan(a.load()).empty

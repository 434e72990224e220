"""The macvlan mechanism (vnet/mechanisms/macvlan/): netns nodes on a host device through
macvlans. The parent is one end of a veth pair this test makes and removes (never a real
NIC; this kernel has no dummy driver); vnet only reads it. Also the example of a kind added in
one package (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vnet import api
from vnet.errors import UnavailableError

from .conftest import Labs
from .hostlib import ip_json, run, unique

pytestmark = pytest.mark.root

MACVLAN = """
name: $lab
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - endpoints: [h1:eth0, "macvlan:$parent"]
    ip: 198.18.40.1/24
    mtu: 1400
  - endpoints: [h2:eth0, "macvlan:$parent"]
    ip: 198.18.40.2/24
    mtu: 1400
"""


@pytest.fixture
def parent() -> Iterator[str]:
    """A host device to hang the macvlans on (the test's, not the lab's)."""
    name = unique("mvp")
    run("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
    for device in (name, f"{name}p"):
        run("ip", "link", "set", device, "up")
    try:
        yield name
    finally:
        run("ip", "link", "del", name, check=False)


def test_macvlans_are_built_verified_repaired_and_destroyed(labs: Labs, parent: str) -> None:
    lab = labs.new("mv")
    lab.write(MACVLAN, parent=parent)
    report = api.apply(lab.load())
    assert {c.key[0] for c in report.plan.changes} >= {"macvlan", "netns", "address"}
    for node in ("h1", "h2"):
        (link,) = ip_json("-d", "link", "show", "eth0", netns=lab.namespace(node))
        assert link["linkinfo"]["info_kind"] == "macvlan"
        assert link["linkinfo"]["info_data"]["mode"] == "bridge"
        assert link["mtu"] == 1400
    assert api.plan(lab.load()).empty
    assert api.verify(lab.load()).ok  # h1 and h2 reach each other through the parent (bridge mode)

    # Drift: an MTU changed by hand is shown and repaired in place; a deleted macvlan is made again.
    run("ip", "-n", lab.namespace("h1"), "link", "set", "eth0", "mtu", "1300")
    run("ip", "-n", lab.namespace("h2"), "link", "del", "eth0")
    drift = {(c.action.value, c.key) for c in api.plan(lab.load()).changes}
    assert ("update", ("macvlan", f"{lab.namespace('h1')}/eth0")) in drift
    assert ("create", ("macvlan", f"{lab.namespace('h2')}/eth0")) in drift
    assert not api.verify(lab.load()).ok
    api.apply(lab.load())
    assert api.plan(lab.load()).empty and api.verify(lab.load()).ok

    api.destroy(lab.name)
    assert [link["ifname"] for link in ip_json("link", "show", parent)] == [parent]  # the parent stays


def test_a_missing_parent_stops_apply_before_any_change(labs: Labs) -> None:
    lab = labs.new("mv")
    lab.write(MACVLAN, parent=unique("nope"))
    with pytest.raises(UnavailableError, match="does not exist"):
        api.apply(lab.load())
    assert not api.labs() or lab.name not in api.labs()

"""destroy leaves nothing: the host's links, namespaces, routes and /run/vnet as before the lab."""

from __future__ import annotations

from pathlib import Path

import pytest

from vnet import api
from vnet.mechanisms.kernel import teardown
from vnet.mechanisms.kernel.teardown import reapers_running

from .conftest import HandMade, Labs
from .hostlib import differences, ip_json, namespace_names, settle_to, snapshot, vnet, wait_for

pytestmark = pytest.mark.root

# Every kind of kernel object: namespaces (one forwarding), bridges (one with STP settings), veths
# on bridges, switch to switch and node to node, a TAP, IPv4/IPv6 addresses, routes.
FULL = """
name: $lab
switches:
  $b1: {type: linux}
  $b2: {type: linux, stp: true, forward_delay: 4, ageing_time: 60, mtu: 1400}
nodes:
  h1: {kind: netns, routes: [{to: default, via: 198.18.60.254}]}
  r1: {kind: netns, forwarding: true}
  h2: {kind: netns, routes: [{to: default, via: "fd00:61::1"}]}
  t1: {kind: tap, multi_queue: true}
links:
  - endpoints: [h1:eth0, $b1]
    ip: [198.18.60.1/24, "fd00:60::1/64"]
  - endpoints: [r1:eth0, $b1]
    ip: 198.18.60.254/24
  - endpoints: [$b1, $b2]
    mtu: 1400
  - endpoints: [t1:eth0, $b2]
    mtu: 1400
  - endpoints: [r1:eth1, h2:eth0]
    ip: ["fd00:61::1/64", "fd00:61::2/64"]
"""


@pytest.mark.parametrize("how", ["lab-name", "file"])
def test_destroy_leaves_nothing(labs: Labs, how: str) -> None:
    lab = labs.new("des")
    path = str(lab.write(FULL))
    before = snapshot([lab])
    assert not before.links and not before.namespaces
    api.apply(lab.load())
    during = snapshot([lab])
    assert len(during.namespaces) == 3 and len(during.links) >= 7
    assert during.run_dir == [lab.name, f"{lab.name}.lock"]
    done = vnet("destroy", *(["--lab", lab.name] if how == "lab-name" else [path]))
    assert done.returncode == 0, done.stderr
    assert "removed 3 namespaces" in done.stdout
    # destroy waits until the lab is gone: no settling needed for its own objects.
    left = differences(before, snapshot([lab]))
    assert not left, "\n".join(left)
    # A second destroy finds nothing and succeeds.
    again = vnet("destroy", "--lab", lab.name)
    assert again.returncode == 0 and "nothing of it is on this host; nothing removed" in again.stdout
    assert not differences(before, snapshot([lab]))


def test_destroy_spares_lookalikes(labs: Labs, hand: HandMade) -> None:
    """Unmarked objects named like the lab's survive its destroy."""
    lab = labs.new("des")
    lab.write(FULL)
    decoy_ns = lab.namespace("zz")  # the lab's namespace prefix, but no mark
    hand.namespace(decoy_ns)
    decoy_br = f"{lab.name}x"
    index = hand.bridge(decoy_br, alias=f"vnet-{lab.name}-decoy")
    before = snapshot([lab], extra_names=[decoy_br])
    api.apply(lab.load())
    api.destroy(lab.name)
    left = settle_to(before, lambda: snapshot([lab], extra_names=[decoy_br]))
    assert not left, "\n".join(left)
    assert decoy_ns in namespace_names()
    assert before.links[decoy_br]["ifalias"] == f"vnet-{lab.name}-decoy"
    assert int(Path(f"/sys/class/net/{decoy_br}/ifindex").read_text()) == index


def _retired(lab: str) -> list[str]:
    """Bridges destroy took out of `lab` that the kernel has not deleted yet."""
    return [link["ifname"] for link in ip_json("link", "show")
            if str(link.get("ifalias", "")).startswith(f"vnet-reap:{lab}:")]


def test_destroy_frees_names_at_once_and_reaps_bridges(labs: Labs, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bridges are deleted in the background, but the lab's names, marks and group are free when
    destroy returns: an apply can follow at once; the retired bridges go within seconds."""
    monkeypatch.setattr(teardown, "SYNC_BRIDGES", 0)  # the reaper path, as for labs of > 8 bridges
    lab = labs.new("des")
    lab.write(FULL)
    before = snapshot([lab])
    api.apply(lab.load())
    report = api.destroy(lab.name)
    assert report.namespaces == 3
    assert not differences(before, snapshot([lab]), run_dir=False)
    assert api.status(lab.load())[0]["objects"] == {}  # retired bridges are not the lab's
    again = api.apply(lab.load())  # same names while the first bridges may still be dying
    assert again.plan.counts()["create"] == len(again.plan.changes) > 0
    assert api.verify(lab.load()).ok
    api.destroy(lab.name)
    wait_for(lambda: not _retired(lab.name) and lab.name not in reapers_running(), 15,
             "the background reaper to delete the retired bridges")
    assert not settle_to(before, lambda: snapshot([lab]))


def test_destroy_removes_bridges_a_dead_reaper_left(labs: Labs, hand: HandMade) -> None:
    """A retired bridge whose reaper died is listed under its lab and removed by its destroy."""
    lab = labs.new("des")
    orphan = f"{lab.name}r"
    hand.bridge(orphan, alias=f"vnet-reap:{lab.name}:{lab.bridge(1)}")
    assert lab.name in api.labs()
    api.destroy(lab.name)
    wait_for(lambda: not _retired(lab.name), 15, "the reaper to delete the orphan")
    assert orphan not in {link["ifname"] for link in ip_json("link", "show")}

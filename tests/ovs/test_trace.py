"""`vnet trace` on OVS: the hops with vswitchd's ofproto/trace, and drift on a hop."""

from __future__ import annotations

from ovslib import Labs, PrivateOvs, vnet

from vnet import api
from vnet.mechanisms.ovs.resources import OvsPort
from vnet.pipeline.compile import compile_lab

PATH = """
name: $lab
switches:
  $b1: {type: ovs}
  $b2: {type: ovs}
nodes:
  src: {kind: netns}
  dst: {kind: netns}
  other: {kind: netns}
links:
  - {endpoints: [src:eth0, $b1], vlan: 10, ip: 198.18.13.1/24}
  - {endpoints: [$b1, $b2], trunk: [10, 20]}
  - {endpoints: [dst:eth0, $b2], vlan: 10, ip: 198.18.13.2/24}
  - {endpoints: [other:eth0, $b2], vlan: 20, ip: 198.18.13.3/24}
"""


def test_trace_shows_ovs_hops_and_drift(labs: Labs, ovs: PrivateOvs) -> None:
    files, lab = labs.up(PATH, "trc")
    path = str(files.files[-1])

    done = vnet("trace", path, "src", "dst", "--ovsdb", ovs.remote)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "delivered" in out and "not delivered" not in out, out
    for bridge in (files.bridge(1), files.bridge(2)):
        assert f"ofproto/trace {bridge}" in out, out
    actions = [line.split("datapath actions:", 1)[1].strip() for line in out.splitlines()
               if "datapath actions:" in line]
    assert len(actions) == 2 and all(a and a != "drop" for a in actions), out

    result = api.trace(lab, "src", "dst", ovsdb=ovs.remote)
    assert result.delivered and result.address == "198.18.13.2"
    assert [h.link for h in result.hops] == [0, 1, 2]

    # A tag changed by hand on the destination's port: the hop shows the drift, exit 1.
    dst_port = next(r.name for r in compile_lab(lab).resources.values()
                    if isinstance(r, OvsPort) and r.link == 2)
    ovs.vsctl("set", "Port", dst_port, "tag=20")
    done = vnet("trace", path, "src", "dst", "--ovsdb", ovs.remote)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert f"OVS port {dst_port}: update pending" in out, out
    assert "not delivered" in out, out
    dropped = [line for line in out.splitlines() if "dropped" in line]
    assert any(dst_port in line for line in dropped), out
    hops = api.trace(lab, "src", "dst", ovsdb=ovs.remote).hops
    assert [bool(h.dropped) for h in hops] == [False, False, True]
    assert "tag" in hops[2].dropped

    api.apply(lab, ovsdb=ovs.remote)
    assert vnet("trace", path, "src", "dst", "--ovsdb", ovs.remote).returncode == 0


def test_trace_across_vlans_is_stopped_by_the_topology(labs: Labs, ovs: PrivateOvs) -> None:
    files, _ = labs.up(PATH, "trv")
    done = vnet("trace", str(files.files[-1]), "src", "other", "--ovsdb", ovs.remote)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not delivered" in done.stdout and "dropped" in done.stdout, done.stdout

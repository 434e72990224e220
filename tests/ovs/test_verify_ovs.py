"""Breaking an OVS lab by hand: an OpenFlow rule that drops only TCP (ICMP still passes).

verify fails on exactly the TCP rows and names them; `plan` shows the rule as drift on the
bridge that holds it; `trace --proto tcp` blames that bridge (not the one the frame entered) and
names the rule and the ports; apply removes the rule over OpenFlow and verify passes again.
"""

from __future__ import annotations

import json
import re

from ovslib import Labs, PrivateOvs, run, vnet

from vnet import api

TWO_BRIDGES = """
name: $lab
switches:
  $b1: {type: ovs}
  $b2: {type: ovs}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  h3: {kind: netns}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.90.1/24}
  - {endpoints: [$b1, $b2]}
  - {endpoints: [h2:eth0, $b2], ip: 198.18.90.2/24}
  - {endpoints: [h3:eth0, $b2], ip: 198.18.90.3/24}
"""


def test_an_openflow_rule_dropping_only_tcp(labs: Labs, ovs: PrivateOvs) -> None:
    files, lab = labs.up(TWO_BRIDGES, "ofd")
    assert api.verify(lab, ovsdb=ovs.remote).ok
    rule = "priority=100,tcp,nw_dst=198.18.90.2,actions=drop"
    run("ovs-ofctl", "add-flow", ovs.paths.file(f"{files.bridge(2)}.mgmt"), rule)

    report = api.verify(lab, ovsdb=ovs.remote, timeout=1.0)
    failing = {(o.probe.source, o.probe.target, o.probe.what) for o in report.outcomes if not o.ok}
    # every TCP row to or from h2 (its SYN-ACKs go to 198.18.90.2 too), and nothing else
    assert failing == {(a, b, "tcp/7") for a, b in (("h1", "h2"), ("h3", "h2"), ("h2", "h1"), ("h2", "h3"))}
    assert all(o.ok for o in report.outcomes if o.probe.proto == "icmp")
    drift = [(c.key, c.reason) for c in report.drift]
    assert drift == [(("ovs-bridge", files.bridge(2)), "differs: flows")]

    path = str(files.files[-1])
    traced = vnet("trace", path, "h1", "h2", "--proto", "tcp", "--ovsdb", ovs.remote)
    assert traced.returncode == 1, traced.stdout + traced.stderr
    dropped = [line for line in traced.stdout.splitlines() if "dropped" in line]
    assert len(dropped) == 1 and f"OVS bridge {files.bridge(2)}" in dropped[0], traced.stdout
    assert "priority 100, tcp,nw_dst=198.18.90.2: drop" in dropped[0]
    actions = [line.split("datapath actions:", 1)[1] for line in traced.stdout.splitlines()
               if "datapath actions:" in line]
    assert actions and not any(re.search(r"(^|,)\s*\d+\s*(,|$)", a) for a in actions), actions  # names
    icmp = json.loads(vnet("trace", path, "h1", "h2", "--json", "--ovsdb", ovs.remote).stdout)
    assert icmp["delivered"] is True

    api.apply(lab, ovsdb=ovs.remote)
    flows = run("ovs-ofctl", "dump-flows", ovs.paths.file(f"{files.bridge(2)}.mgmt")).stdout
    assert "tcp" not in flows and "actions=NORMAL" in flows
    assert api.verify(lab, ovsdb=ovs.remote).ok

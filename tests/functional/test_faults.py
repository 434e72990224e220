"""A failure injected at each step of an apply rolls back to the state before; a kill -9 at any
point leaves a host from which the next apply converges and destroy removes everything.

The hook (vnet/pipeline/execute.py): VNET_TEST_FAULT=fail:K makes change K fail as if the kernel
refused it; kill:K sends SIGKILL to vnet just before change K. The Executor reads it when it is
built, i.e. inside each apply call.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from vnet import api
from vnet.pipeline.execute import ApplyError
from vnet.resources import Action
from vnet.topology import load

from .conftest import Labs
from .hostlib import LabUnderTest, differences, settle_to, snapshot, vnet

pytestmark = pytest.mark.root

# 20 changes: 4 namespaces, 2 bridges, 5 veth pairs, 1 TAP, 6 addresses, 2 routes.
V1 = """
name: $lab
switches:
  $b1: {type: linux}
  $b2: {type: linux, ageing_time: 100}
nodes:
  h1: {kind: netns, routes: [{to: default, via: 198.18.30.254}]}
  h2: {kind: netns}
  r1: {kind: netns, forwarding: true}
  h3: {kind: netns, routes: [{to: default, via: 198.18.31.1}]}
  t1: {kind: tap}
links:
  - endpoints: [h1:eth0, $b1]
    ip: [198.18.30.1/24, "fd00:30::1/64"]
  - endpoints: [r1:eth0, $b1]
    ip: 198.18.30.254/24
  - endpoints: [$b1, $b2]
  - endpoints: [h2:eth0, $b2]
    ip: 198.18.30.2/24
  - endpoints: [t1:eth0, $b2]
  - endpoints: [r1:eth1, h3:eth0]
    ip: [[198.18.31.1/30, "fd00:31::1/64"], 198.18.31.2/30]
    mtu: 1400
"""

# From V1: an MTU (update), an address (delete + create), a TAP's owner (recreate), STP and
# forwarding (updates), a route's metric (recreate), node h4 and its link added.
V2 = """
name: $lab
switches:
  $b1: {type: linux}
  $b2: {type: linux, ageing_time: 100, stp: true}
nodes:
  h1: {kind: netns, routes: [{to: default, via: 198.18.30.254}]}
  h2: {kind: netns}
  r1: {kind: netns, forwarding: false}
  h3: {kind: netns, routes: [{to: default, via: 198.18.31.1, metric: 5}]}
  h4: {kind: netns}
  t1: {kind: tap, owner: nobody}
links:
  - endpoints: [h1:eth0, $b1]
    ip: [198.18.30.1/24, "fd00:30::1/64"]
    mtu: 1450
  - endpoints: [r1:eth0, $b1]
    ip: 198.18.30.254/24
  - endpoints: [$b1, $b2]
  - endpoints: [h2:eth0, $b2]
    ip: 198.18.30.22/24
  - endpoints: [t1:eth0, $b2]
  - endpoints: [r1:eth1, h3:eth0]
    ip: [[198.18.31.1/30, "fd00:31::1/64"], 198.18.31.2/30]
    mtu: 1400
  - endpoints: [h4:eth0, $b1]
    ip: 198.18.30.4/24
"""

# From V1: node h3 and its link removed (its namespace, veth pair, addresses and route deleted).
V3 = V1.replace("  h3: {kind: netns, routes: [{to: default, via: 198.18.31.1}]}\n", "").replace("""
  - endpoints: [r1:eth1, h3:eth0]
    ip: [[198.18.31.1/30, "fd00:31::1/64"], 198.18.31.2/30]
    mtu: 1400
""", "\n")


def _fault_loop(lab: LabUnderTest, monkeypatch: pytest.MonkeyPatch) -> int:
    """For every change K of the current file's plan: fail at K, expect the state before."""
    loaded = lab.load()
    before = snapshot([lab])
    changes = api.plan(loaded).changes
    for k, change in enumerate(changes):
        monkeypatch.setenv("VNET_TEST_FAULT", f"fail:{k}")
        with pytest.raises(ApplyError) as failed:
            api.apply(loaded)
        monkeypatch.delenv("VNET_TEST_FAULT")
        assert "injected fault" in failed.value.message
        assert change.resource.describe() in failed.value.message
        assert "rolled back" in failed.value.message
        # /run/vnet/<lab> (vnet's run directory, no network object) may stay after a failed apply.
        left = settle_to(before, lambda: snapshot([lab]), run_dir=False)
        assert not left, f"fail:{k} ({change.action} {change.key}) did not roll back:\n" + "\n".join(left)
        assert [(c.action, c.key) for c in api.plan(loaded).changes] == [
            (c.action, c.key) for c in changes], f"fail:{k}: the plan changed after the rollback"
    return len(changes)


def test_failure_at_each_step_rolls_back(labs: Labs, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = labs.new("flt")
    lab.write(V1)
    count = _fault_loop(lab, monkeypatch)
    assert 15 <= count <= 25
    api.apply(lab.load())
    result = api.verify(lab.load())
    assert result.ok, [o.to_json() for o in result.outcomes if not o.ok]


def test_failure_in_a_second_apply_returns_to_the_first_state(
        labs: Labs, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = labs.new("flt")
    lab.write(V1, "v1.yaml")
    api.apply(lab.load())
    lab.write(V2, "v2.yaml")
    plan = api.plan(lab.load())
    kinds = {(c.action, c.key[0]) for c in plan.changes}
    assert {(Action.UPDATE, "veth"), (Action.DELETE, "tap"), (Action.CREATE, "tap"),
            (Action.CREATE, "netns"), (Action.UPDATE, "bridge"), (Action.UPDATE, "netns"),
            (Action.DELETE, "address"), (Action.DELETE, "route"), (Action.CREATE, "route")} <= kinds
    first = snapshot([lab])
    count = _fault_loop(lab, monkeypatch)
    assert count == len(plan.changes)
    assert not differences(first, snapshot([lab]))
    api.apply(lab.load())
    assert api.plan(lab.load()).empty


def test_failure_after_removing_a_node_returns_to_the_first_state(
        labs: Labs, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = labs.new("flt")
    lab.write(V1, "v1.yaml")
    api.apply(lab.load())
    lab.write(V3, "v3.yaml")
    assert (Action.DELETE, ("netns", lab.namespace("h3"))) in {
        (c.action, c.key) for c in api.plan(lab.load()).changes}
    _fault_loop(lab, monkeypatch)


def test_kill_during_apply_then_apply_converges(labs: Labs) -> None:
    lab = labs.new("kil")
    path = str(lab.write(V1))
    baseline = snapshot([lab])
    changes = api.plan(lab.load()).changes
    first_veth = next(k for k, c in enumerate(changes) if c.key[0] == "veth")
    for k in (first_veth + 1, len(changes) - 1):  # every K: test_kill_at_every_step
        killed = vnet("apply", path, env={"VNET_TEST_FAULT": f"kill:{k}"})
        assert killed.returncode == -signal.SIGKILL, (k, killed.stdout, killed.stderr)
        again = vnet("apply", path)
        assert again.returncode == 0, (k, again.stdout, again.stderr)
        assert api.plan(lab.load()).empty, f"kill:{k}: apply after the kill did not converge"
        result = api.verify(lab.load())
        assert result.ok, (k, result.drift, [o.to_json() for o in result.outcomes if not o.ok])
        gone = vnet("destroy", path)
        assert gone.returncode == 0, gone.stderr
        left = settle_to(baseline, lambda: snapshot([lab]))
        assert not left, f"kill:{k}: destroy left\n" + "\n".join(left)


def test_destroy_without_the_file_after_a_kill(labs: Labs) -> None:
    lab = labs.new("kil")
    path = str(lab.write(V1))
    baseline = snapshot([lab])
    changes = api.plan(lab.load()).changes
    k = next(k for k, c in enumerate(changes) if c.key[0] == "address")
    killed = vnet("apply", path, env={"VNET_TEST_FAULT": f"kill:{k}"})
    assert killed.returncode == -signal.SIGKILL
    assert differences(baseline, snapshot([lab])), "the killed apply changed nothing"
    gone = vnet("destroy", "--lab", lab.name)
    assert gone.returncode == 0, gone.stderr
    left = settle_to(baseline, lambda: snapshot([lab]))
    assert not left, "\n".join(left)


def _apply_in_child(path: str, fault: str) -> int | None:
    """apply in a forked child with VNET_TEST_FAULT set (cheap: no new interpreter); its exit code."""
    def child() -> None:
        os.environ["VNET_TEST_FAULT"] = fault
        api.apply(load(path))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    return process.exitcode


def test_kill_at_every_step(labs: Labs) -> None:
    """kill -9 before each change K: the next apply converges (even K), or destroy alone cleans up
    (odd K); either way destroy leaves nothing."""
    lab = labs.new("kil")
    path = str(lab.write(V1))
    baseline = snapshot([lab])
    loaded = lab.load()
    count = len(api.plan(loaded).changes)
    for k in range(count):
        assert _apply_in_child(path, f"kill:{k}") == -signal.SIGKILL, f"kill:{k}"
        if k % 2 == 0:
            api.apply(loaded)
            assert api.plan(loaded).empty, f"kill:{k}: apply after the kill did not converge"
            result = api.verify(loaded)
            assert result.ok, (k, result.drift, [o.to_json() for o in result.outcomes if not o.ok])
        api.destroy(lab.name)
        left = settle_to(baseline, lambda: snapshot([lab]))
        assert not left, f"kill:{k}: destroy left\n" + "\n".join(left)

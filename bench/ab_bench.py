"""Benchmark: this vnet against an earlier checkout, same labs, same run, interleaved.

    .venv/bin/python bench/ab_bench.py --baseline-tree DIR [--repeat 3] [--only linear,ovs,vms]

Root only. DIR is a checkout of an earlier vnet (`git worktree add DIR <rev>`); each measurement
runs in a fresh interpreter on this venv with DIR or this tree first on sys.path, alternating
A, B, A, B, ... so that a machine that gets slower or faster during the run weighs on both.
Only the public API is used (vnet.load, api.apply, api.plan, api.verify, api.destroy), so any
vnet since the API existed can be the baseline. The labs:
- linear: bench/linear_bench.py's linear,100 (100 namespaces, 100 Linux bridges, 199 links):
  apply, no-op plan, no-op re-apply, destroy;
- ovs: bench/ovs_bench.py's 250 namespaces x 2 ports on two userspace OVS bridges (500 ports),
  on a private ovsdb-server/ovs-vswitchd this script starts and stops by pid: apply, no-op
  plan, destroy;
- vms: 2 tiny VMs on a Linux bridge: apply (until the guests' agents answer) + verify, destroy.
Medians per step and the ratio this/baseline are printed (< 1: this tree is faster). Lab names
are unique to the run; every lab is destroyed at the end, also after a failure.
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TREE = HERE.parent

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import vnet
from vnet import api
path, ovsdb, verify = sys.argv[2], sys.argv[3] or None, sys.argv[4] == "1"
times = {}
def step(name, call):
    started = time.monotonic(); result = call(); times[name] = time.monotonic() - started; return result
lab = vnet.load(path)
try:
    step("apply", lambda: api.apply(lab, ovsdb=ovsdb))
    if verify:
        report = step("verify", lambda: api.verify(lab, ovsdb=ovsdb))
        assert report.ok, "verify failed"
    plan = step("no-op plan", lambda: api.plan(vnet.load(path), ovsdb=ovsdb))
    assert plan.empty, plan.to_json()
    step("no-op re-apply", lambda: api.apply(vnet.load(path), ovsdb=ovsdb))
finally:
    step("destroy", lambda: api.destroy(lab.name, ovsdb=ovsdb))
print(json.dumps(times))
"""


def linear(lab: str) -> str:
    sys.path.insert(0, str(HERE))
    from linear_bench import topology_yaml  # noqa: PLC0415

    return topology_yaml(lab, 100)


def ovs(lab: str) -> str:
    lines = [f"name: {lab}", "switches:", f"  {lab}a: {{type: ovs, datapath: netdev}}",
             f"  {lab}b: {{type: ovs, datapath: netdev}}", "nodes:"]
    lines += [f"  n{k}: {{kind: netns}}" for k in range(250)]
    lines += ["links:"]
    for k in range(250):
        lines += [f"  - {{endpoints: [n{k}:eth0, {lab}a], vlan: {10 + k % 8}}}",
                  f"  - {{endpoints: [n{k}:eth1, {lab}b], vlan: {10 + k % 8}}}"]
    return "\n".join(lines) + "\n"


def vms(lab: str) -> str:
    return "\n".join([f"name: {lab}", "networks:", "  pool: {subnet: 198.18.60.0/24}", "switches:",
                      f"  {lab}s: {{type: linux}}", "nodes:", "  v1: {kind: vm}", "  v2: {kind: vm}",
                      "links:", f"  - {{endpoints: [v1:eth0, {lab}s], network: pool}}",
                      f"  - {{endpoints: [v2:eth0, {lab}s], network: pool}}"]) + "\n"


LABS = {"linear": (linear, False), "ovs": (ovs, False), "vms": (vms, True)}


def measure(tree: Path, path: Path, ovsdb: str, verify: bool) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(path), ovsdb, "1" if verify else "0"],
                          capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {done.stderr.strip()[-2000:]}")
    times: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-tree", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="linear,ovs,vms")
    args = parser.parse_args()
    sys.path.insert(0, str(TREE))
    from vnet.host import ovs_daemon  # noqa: PLC0415

    work = Path(tempfile.mkdtemp(prefix="abb-"))
    paths = ovs_daemon.OvsPaths.private(str(work / "ovs"))
    started: list[int] = []
    try:
        for name in args.only.split(","):
            make, verify = LABS[name]
            ovsdb = ""
            if name == "ovs":
                (work / "ovs").mkdir(exist_ok=True)
                started = ovs_daemon.start(paths)
                ovsdb = paths.remote
            results: dict[str, list[dict[str, float]]] = {"baseline": [], "this": []}
            for k in range(args.repeat):
                for label, tree in (("baseline", args.baseline_tree), ("this", TREE)):
                    path = work / f"{name}-{label}-{k}.yaml"
                    path.write_text(make(f"ab{secrets.token_hex(2)}"))
                    results[label].append(measure(tree, path, ovsdb, verify))
            print(f"\n{name} (median of {args.repeat}, seconds)")
            for step in results["this"][0]:
                old = statistics.median(r[step] for r in results["baseline"])
                new = statistics.median(r[step] for r in results["this"])
                print(f"  {step:<16} baseline {old:7.3f}   this {new:7.3f}   ratio {new / old:5.2f}")
            if started:
                ovs_daemon.stop(paths)
                started = []
    finally:
        if started:
            ovs_daemon.stop(paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: `vnet verify` of a linear,N lab (the derived matrix), by what its rows prove.

    .venv/bin/python bench/verify_bench.py [--n 100] [--repeat 3] [--baseline-tree DIR]

Root only. The lab is bench/linear_bench.py's (hosts on a chain of Linux bridges, one subnet,
so every ordered pair must reach). One apply, then, `--repeat` times each, in one run:
- the derived rows as verify proves them: ICMP, TCP (to vnet's listeners) and the MTU row, per
  ordered pair;
- the same verify restricted to the ICMP and TCP rows, and to the ICMP rows alone;
- with `--baseline-tree DIR` (a checkout of an earlier vnet, e.g. `git worktree add DIR <rev>`),
  that version's `vnet.api.verify` of the same lab, in a subprocess on this venv: the baseline
  the ratios are against.
The lab is destroyed at the end, also after a failure. Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from linear_bench import topology_yaml

import vnet
from vnet import api
from vnet.topology.graph import LabGraph, build_graph
from vnet.topology.reach import Probe
from vnet.verification.prove import prove


@dataclass(frozen=True)
class Rows:
    """A graph whose expectations are a subset of the lab's (what prove reads of a graph)."""

    graph: LabGraph
    kinds: frozenset[str]

    @property
    def lab(self) -> vnet.Lab:
        return self.graph.lab

    def expectations(self) -> list[Probe]:
        return [p for p in self.graph.expectations() if p.what.split("/")[0].split(" ")[0] in self.kinds]


BASELINE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
import vnet
from vnet import api
lab = vnet.load(sys.argv[2])
t0 = time.perf_counter()
report = api.verify(lab)
print(json.dumps({"seconds": time.perf_counter() - t0, "rows": len(report.outcomes), "ok": report.ok}))
"""


def timed(graph: object, repeat: int) -> tuple[list[float], int, bool]:
    seconds, rows, ok = [], 0, True
    for _ in range(repeat):
        t0 = time.perf_counter()
        outcomes = prove(graph)  # type: ignore[arg-type]
        seconds.append(time.perf_counter() - t0)
        rows, ok = len(outcomes), ok and all(o.ok for o in outcomes)
    return seconds, rows, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-tree", type=Path, default=None)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("verify_bench needs root", file=sys.stderr)
        return 77
    name = f"vb{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "lab.yaml"
        path.write_text(topology_yaml(name, args.n))
        lab = vnet.load(str(path))
        try:
            api.apply(lab)
            time.sleep(2)  # the fresh lab's IPv6 autoconfiguration and kworkers settle
            graph = build_graph(lab)
            results: dict[str, tuple[list[float], int, bool]] = {}
            if args.baseline_tree is not None:
                runs = [json.loads(subprocess.run([sys.executable, "-c", BASELINE, str(args.baseline_tree),
                                                   str(path)], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(args.repeat)]
                results["baseline (earlier vnet, ICMP only)"] = (
                    [r["seconds"] for r in runs], runs[0]["rows"], all(r["ok"] for r in runs))
            results["ICMP rows"] = timed(Rows(graph, frozenset({"icmp"})), args.repeat)
            results["ICMP + TCP rows"] = timed(Rows(graph, frozenset({"icmp", "tcp"})), args.repeat)
            results["ICMP + TCP + MTU rows (verify)"] = timed(graph, args.repeat)
        finally:
            api.destroy(name, wait=True)
    load = os.getloadavg()[0]
    print(f"linear,{args.n}: verify, median of {args.repeat}; load average {load:.2f}")
    base = statistics.median(next(iter(results.values()))[0])
    print(f"{'measurement':40} {'median s':>9} {'min s':>8} {'rows':>7}  ok     ratio")
    for label, (seconds, rows, ok) in results.items():
        median = statistics.median(seconds)
        print(f"{label:40} {median:9.3f} {min(seconds):8.3f} {rows:7d}  {ok!s:5}  {median / base:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

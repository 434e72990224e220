"""Benchmark: load + check + graph of a 1000-node, 2000-link topology (target: <= 1 s in total).

    .venv/bin/python bench/load_bench.py [--repeat N] [--keep FILE] [--extras]

Generates the topology into a temporary file, then over N repetitions times each stage of
`vnet.load` (YAML parse, model load, checks) and `build_graph`, prints median and min of each,
times `vnet validate FILE` as a subprocess, and compares the YAML parse with PyYAML's own
`yaml.load(..., Loader=CSafeLoader)` of the same text. Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import yaml

from vnet.topology import loader as loader_module
from vnet.topology.checks import check
from vnet.topology.graph import build_graph
from vnet.topology.loader import load_document
from vnet.topology.source import read_file

N_NODES = 1000
N_OVS = 20
N_LINUX = 20
VLANS = (10, 20, 30)


def generate() -> dict[str, Any]:
    """A realistic lab: OVS core with VLAN trunks, Linux access bridges, pools, p2p links, routes."""
    ovs = [f"ovs{k:02d}" for k in range(N_OVS)]
    linux = [f"br{k:02d}" for k in range(N_LINUX)]
    # RSTP: the OVS chain below is closed into a ring (VLAN 10), a loop that needs spanning tree
    switches: dict[str, Any] = {name: {"type": "ovs", "fail_mode": "standalone", "rstp": True}
                                for name in ovs}
    for k, name in enumerate(linux):
        switches[name] = {"type": "linux", "vlan_filtering": k % 2 == 0, "stp": False}
    networks: dict[str, Any] = {
        f"vlan{vlan}": {"subnet": f"198.18.{16 * k}.0/20", "gateway": f"198.18.{16 * k}.1"}
        for k, vlan in enumerate(VLANS)
    }
    networks["v6"] = {"subnet": "fd00:18::/64"}
    for k in range(N_LINUX):
        networks[f"acc{k:02d}"] = {"subnet": f"198.19.{k}.0/24"}
    nodes: dict[str, Any] = {}
    links: list[dict[str, Any]] = []
    names = [f"n{i:04d}" for i in range(N_NODES)]
    for i, name in enumerate(names):
        kind = "vm" if i % 10 == 3 else "tap" if i % 20 == 7 else "netns"
        node: dict[str, Any] = {"kind": kind}
        if kind == "vm":
            node.update(memory=256, vcpus=1)
        # eth0: every node on a switch, from a pool
        if i % 2 == 0:
            vlan = VLANS[i % 3]
            links.append({"endpoints": [f"{name}:eth0", ovs[i % N_OVS]], "vlan": vlan,
                          "network": [f"vlan{vlan}", "v6"] if i % 8 == 0 else f"vlan{vlan}"})
            if kind != "tap" and i % 4 == 0:
                gateway = networks[f"vlan{vlan}"]["gateway"]
                node["routes"] = [{"to": "default", "via": gateway},
                                  {"to": f"10.{i % 200}.0.0/16", "via": gateway, "metric": 100}]
        else:
            bridge = (i // 2) % N_LINUX
            links.append({"endpoints": [f"{name}:eth0", linux[bridge]], "network": f"acc{bridge:02d}"})
        # eth1: half the nodes have a second, static address on another bridge
        if i % 2 == 0:
            links.append({"endpoints": [f"{name}:eth1", linux[(i // 2) % N_LINUX]],
                          "ip": f"10.{100 + i // 250}.{i % 250}.1/24"})
        nodes[name] = node
    # 460 point-to-point links between neighbours
    for k in range(460):
        a, b = names[2 * k], names[2 * k + 1]
        net, host = f"10.250.{k // 64}", 4 * (k % 64)
        links.append({"endpoints": [f"{a}:p2p", f"{b}:p2p"], "mtu": 9000,
                      "ip": [f"{net}.{host + 1}/30", f"{net}.{host + 2}/30"]})
    # switch fabric: an OVS chain of trunks, each Linux bridge uplinked to an OVS access port
    for k in range(N_OVS - 1):
        links.append({"endpoints": [ovs[k], ovs[k + 1]], "trunk": list(VLANS)})
    links.append({"endpoints": [ovs[-1], ovs[0]], "trunk": [10]})
    for k, name in enumerate(linux):
        links.append({"endpoints": [name, ovs[k]], "vlan": 900 + k})
    return {"name": "bench", "defaults": {"mtu": 1500, "ovs_datapath": "auto"},
            "networks": networks, "switches": switches, "nodes": nodes, "links": links}


class _ParseTimer:
    """Wraps the loader's `read_file` to time the YAML parse inside a real `load_document`."""

    def __init__(self) -> None:
        self.elapsed = 0.0
        self.original = loader_module.read_file

    def __call__(self, path: str) -> Any:
        start = time.perf_counter()
        try:
            return self.original(path)
        finally:
            self.elapsed = time.perf_counter() - start

    def __enter__(self) -> _ParseTimer:
        loader_module.read_file = self  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        loader_module.read_file = self.original


def time_stages(path: str) -> dict[str, float]:
    """One `vnet.load` (= check(load_document)) + build_graph, split into stages."""
    with _ParseTimer() as parse:
        start = time.perf_counter()
        loaded = load_document(path)
        loaded_at = time.perf_counter()
    lab = check(loaded)
    checked_at = time.perf_counter()
    build_graph(lab)
    done = time.perf_counter()
    return {
        "YAML parse": parse.elapsed,
        "model load": loaded_at - start - parse.elapsed,
        "checks": checked_at - loaded_at,
        "graph build": done - checked_at,
        "total": done - start,
    }


def time_extras(path: str) -> dict[str, float]:
    """What `vnet verify` adds later (not part of the 1 s budget): segments and the derived matrix."""
    graph = build_graph(check(load_document(path)))
    start = time.perf_counter()
    _ = graph.segments
    segments_at = time.perf_counter()
    probes = graph.expectations()
    done = time.perf_counter()
    return {"segments": segments_at - start, f"expectations ({len(probes)})": done - segments_at}


def _repeat(fn: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _row(name: str, values: list[float]) -> str:
    return f"  {name:<28} {statistics.median(values) * 1000:9.1f} {min(values) * 1000:9.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7, help="repetitions (default 7)")
    parser.add_argument("--keep", metavar="FILE", help="also write the generated topology here")
    parser.add_argument("--extras", action="store_true",
                        help="also time L2 segments and the derived reachability matrix (slow)")
    args = parser.parse_args(argv)

    document = generate()
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=120)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.yaml")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        if args.keep:
            with open(args.keep, "w", encoding="utf-8") as handle:
                handle.write(text)
        lab = check(load_document(path))  # warm-up; also proves the file is valid
        print(f"topology: {len(lab.topology.nodes)} nodes, {len(lab.topology.switches)} switches, "
              f"{len(lab.links)} links, {len(lab.interfaces)} interfaces; "
              f"file {len(text.encode()) / 1024:.0f} KiB, {text.count(chr(10))} lines")
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.repeat} repetitions\n")

        runs = [time_stages(path) for _ in range(args.repeat)]
        print(f"  {'stage (ms)':<28} {'median':>9} {'min':>9}")
        for stage in runs[0]:
            print(_row(stage, [r[stage] for r in runs]))
        total = statistics.median(r["total"] for r in runs)
        print(f"  {'':<28} budget 1000 ms: {'OK' if total <= 1.0 else 'OVER'}\n")
        if args.extras:
            extras = [time_extras(path)]
            print("  later, on first use by verify (not in the total; one run):")
            for stage in extras[0]:
                print(_row(stage, [r[stage] for r in extras]))

        baseline = _repeat(lambda: yaml.load(text, Loader=yaml.CSafeLoader), args.repeat)
        ours = _repeat(lambda: read_file(path), args.repeat)
        print("\n  YAML parse vs PyYAML baseline:")
        print(_row("yaml.load (CSafeLoader)", baseline))
        print(_row("vnet source.read_file", ours))
        print(f"  {'ratio (median)':<28} {statistics.median(ours) / statistics.median(baseline):9.2f}x")

        command = [sys.executable, "-m", "vnet", "validate", path]
        startup = _repeat(lambda: subprocess.run([sys.executable, "-c", "import vnet.cli"], check=True),
                          max(3, args.repeat // 2))
        validate = _repeat(lambda: subprocess.run(command, check=True, capture_output=True),
                           max(3, args.repeat // 2))
        print("\n  subprocess (wall clock):")
        print(_row("python -c 'import vnet.cli'", startup))
        print(_row("vnet validate FILE", validate))
    return 0


if __name__ == "__main__":
    sys.exit(main())

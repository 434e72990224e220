#!/usr/bin/env python3
"""Check topology files and describe them with vnet's Python API. Needs no root; changes nothing.

    .venv/bin/python examples/validate_and_draw.py topologies/quickstart.yaml
    .venv/bin/python examples/validate_and_draw.py --dot lab.dot topologies/routed.yaml
    .venv/bin/python examples/validate_and_draw.py --json topologies/*.yaml

For each file: every problem (file:line:col, code, attribute path, hint) if it is invalid;
otherwise its warnings, L2 segments and the reachability probes `vnet verify` would run.
Exits 65 (like `vnet validate`) if any file is invalid, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys

import vnet
from vnet.errors import EX_DATAERR, TopologyError
from vnet.topology.graph import LabGraph, build_graph
from vnet.topology.render import to_dot


def describe(graph: LabGraph) -> None:
    """Print segments and probes: what a network engineer checks first."""
    summary = graph.summary()
    print(f"lab {summary['lab']}: {len(summary['nodes'])} nodes, {len(summary['switches'])} switches, "
          f"{summary['links']} links")
    for name, info in summary["interfaces"].items():
        print(f"  {name:<16} {info['mac']}  {' '.join(info['addresses']) or '-'}")
    print("segments (L2 broadcast domains):")
    for segment in summary["segments"]:
        vlans = ",".join(map(str, segment["vlans"])) or "untagged"
        print(f"  {segment['name']:<20} vlan {vlans:<10} {' '.join(segment['interfaces'])}")
    print(f"probes ({summary['expect']['source']}):")
    for probe in graph.expectations():
        print(f"  {probe!s:<40} # {probe.reason}")


def check_file(path: str, args: argparse.Namespace) -> bool:
    """True if `path` is a valid topology."""
    try:
        lab = vnet.load(path)  # raises TopologyError carrying every diagnostic
    except TopologyError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic.format(), file=sys.stderr)
        errors = sum(d.is_error for d in exc.diagnostics)
        print(f"{path}: invalid, {errors} error(s)", file=sys.stderr)
        return False
    for warning in lab.warnings:
        print(warning.format(), file=sys.stderr)
    graph = build_graph(lab)
    if args.json:
        print(json.dumps({"file": path, **graph.summary()}, indent=2))
    else:
        describe(graph)
    if args.dot:
        with open(args.dot, "w", encoding="utf-8") as handle:
            handle.write(to_dot(graph))  # render: dot -Tpng lab.dot -o lab.png
        print(f"wrote {args.dot}", file=sys.stderr)
    return True


def count_problems(paths: list[str]) -> tuple[int, int]:
    """(errors, warnings) over all files, without raising: `vnet.diagnose`."""
    errors = warnings = 0
    for path in paths:
        _lab, diagnostics = vnet.diagnose(path)
        errors += sum(d.is_error for d in diagnostics)
        warnings += sum(not d.is_error for d in diagnostics)
    return errors, warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help="topology files")
    parser.add_argument("--json", action="store_true", help="print each lab's summary as JSON")
    parser.add_argument("--dot", metavar="OUT", help="write the (last) lab's drawing as Graphviz DOT")
    args = parser.parse_args(argv)
    valid = [check_file(path, args) for path in args.files]
    errors, warnings = count_problems(args.files)
    print(f"{sum(valid)}/{len(valid)} valid; {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 0 if all(valid) else EX_DATAERR


if __name__ == "__main__":
    sys.exit(main())

"""The reliability report: faults, concurrency, hostile input and soak, in one table.

    sudo .venv/bin/python bench/reliability.py [--soak-cycles 50] [--fuzz-examples 1000] [--quick]
                                               [--json FILE]

Runs, in one pytest session: tests/reliability with its extended variants (VNET_RELIABILITY_FULL=1:
every crash point with the guest, more races and random kills), the
soak test with --soak-cycles cycles, the hostile-document test with --fuzz-examples fuzzed
documents; and the existing suites that cover the rest of issue 7, counted as tests: the
fault/lock/ownership/destroy/drift functional tests, tests/ovs/test_vms.py and test_drift.py (a
guest killed, OVS rows changed by hand), and tests/test_properties.py with --fuzz-examples
examples per property (hypothesis's statistics give the number of documents it tried).
(tests/functional/test_cli.py is left out: its `destroy --all` sandbox has no PID namespace and
would stop the guests of every vnet lab on the host.)

The tests append one JSON line per fault, race, hostile input and soak cycle to a results file
(tests/reliability/rellib.py, `record`); this script adds them up. `--quick` is the CI-sized run
(no extended variants, 3 soak cycles, 60 fuzzed documents). Needs root, and no other
ovs-vswitchd with the userspace datapath on the host (the tests wait for one to stop).
Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXISTING = ("tests/functional/test_faults.py", "tests/functional/test_lock.py",
            "tests/functional/test_ownership.py", "tests/functional/test_destroy.py",
            "tests/functional/test_drift.py", "tests/ovs/test_vms.py", "tests/ovs/test_drift.py")
PROPERTIES = "tests/test_properties.py"
HOSTILE_PROPERTIES = ("test_random_yaml_documents", "test_mutated_topologies", "test_parse_text_random",
                      "test_read_file_and_load_random_bytes", "test_load_token_soup")
FAULT_KINDS = (("apply kill:", "apply killed at change K (kill:K)"),
               ("apply SIGKILL", "apply killed by SIGKILL (timed)"),
               ("destroy kill-destroy:", "destroy killed at step K (kill-destroy:K)"),
               ("destroy SIGKILL", "destroy killed by SIGKILL (timed)"),
               ("", "service faults and hand-made damage"))


@dataclass
class Run:
    results: list[dict[str, Any]]
    junit: dict[str, Counter[str]]  # per test file: passed / failed / skipped / xfailed
    hypothesis: dict[str, int]  # property -> passing examples
    returncode: int
    seconds: float
    load: tuple[str, str] = ("", "")
    failed_tests: list[str] = field(default_factory=list)


def _pytest(args: argparse.Namespace, work: Path) -> tuple[int, str]:
    env = {**os.environ, "VNET_RELIABILITY_RESULTS": str(work / "results.jsonl"),
           "VNET_SOAK_CYCLES": str(args.soak_cycles), "VNET_FUZZ_EXAMPLES": str(args.fuzz_examples)}
    if not args.quick:
        env["VNET_RELIABILITY_FULL"] = "1"
    argv = [str(REPO / ".venv/bin/python"), str(REPO / "tools/sandbox.py"),  # the suite's private host
            str(REPO / ".venv/bin/pytest"), "-p", "no:cacheprovider", "-q", "-rfEX",
            f"--junitxml={work / 'junit.xml'}", "--hypothesis-show-statistics",
            *EXISTING, PROPERTIES, "tests/reliability"]  # tests/ovs first: its OVS is shared
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    (work / "pytest.log").write_text(done.stdout + done.stderr)
    return done.returncode, done.stdout


def _junit(path: Path) -> tuple[dict[str, Counter[str]], list[str]]:
    per_file: dict[str, Counter[str]] = {}
    failed = []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("classname", "")
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "xfailed" if child.get("type") == "pytest.xfail" else "skipped"
        per_file.setdefault(name, Counter())[outcome] += 1
        if outcome == "failed":
            failed.append(f"{case.get('classname')}::{case.get('name')}")
    return per_file, failed


def _hypothesis(output: str) -> dict[str, int]:
    """Passing examples per property, from --hypothesis-show-statistics."""
    found: dict[str, int] = {}
    for block in re.split(r"\n(?=\S+::\S+:\n)", output):
        head = block.split(":\n", 1)[0]
        name = head.rsplit("::", 1)[-1]
        if name in HOSTILE_PROPERTIES:
            found[name] = sum(int(n) for n in re.findall(r"(\d+) passing(?: examples)?,", block))
    return found


def run_all(args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory(prefix="vnet-reliability-") as tmp:
        work = Path(tmp)
        load_before = _load()
        started = time.monotonic()
        code, output = _pytest(args, work)
        seconds = time.monotonic() - started
        results_file = work / "results.jsonl"
        results = [json.loads(line) for line in results_file.read_text().splitlines()] \
            if results_file.exists() else []
        junit, failed = _junit(work / "junit.xml") if (work / "junit.xml").exists() else ({}, [])
        if code not in (0, 1):
            sys.stderr.write((work / "pytest.log").read_text()[-5000:])
        elif failed:
            sys.stderr.write("\n".join(line for line in output.splitlines() if line.startswith(
                ("FAILED", "ERROR", "XPASS")))[-5000:] + "\n")
        return Run(results, junit, _hypothesis(output), code, seconds, (load_before, _load()), failed)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- the table --------------------------------------------------------------------------------

def _rows(run: Run, category: str) -> list[dict[str, Any]]:
    return [r for r in run.results if r["category"] == category]


def _fault_lines(run: Run) -> list[tuple[str, int, int]]:
    faults = _rows(run, "fault")
    lines, seen = [], set()
    for prefix, label in FAULT_KINDS:
        group = [r for r in faults if r["case"].startswith(prefix) and id(r) not in seen]
        seen |= {id(r) for r in group}
        lines.append((f"  {label}", len(group), sum(r["ok"] for r in group)))
    return [("faults injected / survived", len(faults), sum(r["ok"] for r in faults)), *lines]


def _concurrency_lines(run: Run) -> list[tuple[str, int, int]]:
    races = _rows(run, "concurrency")
    runs = sum(r.get("runs", 1) for r in races)
    conflicts = sum(r.get("conflicts", 0) for r in races)
    handled = sum(r.get("conflicts", 0) for r in races if r["ok"])
    held = sum(r.get("runs", 1) for r in races if r["ok"])
    return [(f"concurrent vnet runs / in races that held ({len(races)} races)", runs, held),
            ("  lock conflicts / handled (waited or exit 75, never interleaved)", conflicts, handled)]


def _hostile_lines(run: Run) -> list[tuple[str, int, int]]:
    inputs = _rows(run, "hostile")
    fuzzed = [r for r in inputs if r["case"].startswith("fuzzed")]
    examples = sum(run.hypothesis.values())
    properties = run.junit.get("tests.test_properties", Counter())
    clean = examples if properties["failed"] == 0 else 0
    return [("hostile inputs tried / rejected cleanly", len(inputs) + examples,
             sum(r["ok"] for r in inputs) + clean),
            ("  hand-written (shell syntax, unicode, image paths, YAML bombs, checks)",
             len(inputs) - len(fuzzed), sum(r["ok"] for r in inputs) - sum(r["ok"] for r in fuzzed)),
            ("  fuzzed documents through `vnet apply` in a sandbox", len(fuzzed),
             sum(r["ok"] for r in fuzzed)),
            ("  hypothesis examples (tests/test_properties.py)", examples, clean)]


def _leak_lines(run: Run) -> list[tuple[str, int, int]]:
    leaks = _rows(run, "leak")
    cycles = [r for r in leaks if r["case"].startswith("soak cycle")]
    found = sum(r.get("leaks", 0) for r in leaks)
    summary = next((r for r in leaks if "cycles" in r), None)
    lines = [("leaks found (soak cycles checked / leaks)", len(cycles), found)]
    if summary is not None:
        lines.append((f"  growth after cycle 1: fds {summary['fds_growth']:+d}, threads "
                      f"{summary['threads_growth']:+d}, zombies {summary['zombies_growth']:+d}, RSS "
                      f"{summary['rss_first_kib'] // 1024} -> {summary['rss_last_kib'] // 1024} MiB", 0, 0))
    return lines


def table(run: Run, args: argparse.Namespace) -> str:
    out = [f"vnet reliability report, {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()}: "
           f"{os.cpu_count()} CPUs, load average {run.load[0]} -> {run.load[1]}",
           f"pytest exit {run.returncode}, {run.seconds / 60:.1f} min; soak {args.soak_cycles} cycles, "
           f"{args.fuzz_examples} fuzz examples{'; quick (CI-sized)' if args.quick else ''}", "",
           f"{'':72} {'tried':>7} {'ok':>7}"]
    for section in (_fault_lines(run), _concurrency_lines(run), _hostile_lines(run), _leak_lines(run)):
        out += [f"{label:72} {tried:>7} {ok:>7}" if tried or ok or "leaks" in label else label
                for label, tried, ok in section] + [""]
    out.append(f"existing suites re-run{'':49} passed failed skipped")
    for name in sorted(run.junit):
        if not name.startswith("tests.reliability"):
            c = run.junit[name]
            out.append(f"  {name:68} {c['passed']:>6} {c['failed']:>6} {c['skipped']:>7}")
    bad = [r["case"] for r in run.results if not r["ok"]]
    out += [f"not ok: {case}" for case in bad[:20]] + [f"failed test: {t}" for t in run.failed_tests[:20]]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--soak-cycles", type=int, default=50)
    parser.add_argument("--fuzz-examples", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="CI-sized: no extended variants")
    parser.add_argument("--json", type=Path, help="also write the figures and every record here")
    args = parser.parse_args()
    if args.quick:
        args.soak_cycles, args.fuzz_examples = min(args.soak_cycles, 3), min(args.fuzz_examples, 60)
    if os.geteuid() != 0:
        print("bench/reliability.py changes the host's network: run it as root", file=sys.stderr)
        return 77
    run = run_all(args)
    print(table(run, args))
    if args.json:
        args.json.write_text(json.dumps({"results": run.results, "junit": run.junit,
                                         "hypothesis": run.hypothesis, "returncode": run.returncode,
                                         "seconds": run.seconds, "load": run.load}, indent=1))
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())

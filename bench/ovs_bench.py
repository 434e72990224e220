"""Benchmark: 500 OVS ports with vnet vs `ovs-vsctl` (one process per port, and one call for all).

    .venv/bin/python bench/ovs_bench.py [--nodes 250] [--addresses]

Root only; needs Open vSwitch's programs (Debian: openvswitch-switch). The script starts its own
private ovsdb-server + ovs-vswitchd (own run directory, database and sockets; the system OVS is
never used) and stops them by pid at the end. The lab: `--nodes` namespaces (250), each with
eth0 on OVS bridge A and eth1 on OVS bridge B (datapath netdev, as this kernel has no OVS
module), every port an access port (tags 10-17): 500 OVS ports on 500 veth pairs.

Measured in one run:
1. vnet: `vnet.api.apply` of that lab (namespaces, veth pairs, transmit checksum off on the
   node ends, both bridges and all ports in one OVSDB transaction), and the part of it spent in
   the OVSDB transaction (OvsDriver.execute, which waits until vswitchd has applied it); then
   the no-op `plan`, and the no-op re-apply (load included; median of 5, with the time per
   stage; the issue requires < 0.5 s), then `destroy`;
2. `ovs-vsctl add-port BR PORT tag=N`, one process per port, 500 processes, on two fresh netdev
   bridges, for the same 250 namespaces / 500 veth pairs made beforehand with `ip -batch`
   (not counted);
3. one `ovs-vsctl -- add-port ... -- add-port ...` call adding all 500 ports, likewise.
Both ratios are printed (vnet must beat the per-port loop by at least 5x); the exit status is
1 when a requirement is not met. Before each timed step the script waits until rtnetlink is
quiet. Every name is unique to the run (`ob<hex>`); everything the script made is removed at
the end, also after a failure or Ctrl-C: the lab (vnet destroy), its own bridges (del-br), its
own namespaces (ip netns del), its private OVS. Results: bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vnet
import vnet.mechanisms.kernel.observe
import vnet.mechanisms.ovs
import vnet.mechanisms.ovs.observe
import vnet.pipeline.stages
from vnet import api
from vnet.host import netns, ovs_daemon
from vnet.mechanisms.ovs.driver import OvsDriver
from vnet.netlink import NetlinkSocket, wire
from vnet.resources import Change, Failure

TAGS = 8  # access VLANs 10..17, round robin


@dataclass
class Run:
    ident: str
    workdir: Path
    paths: ovs_daemon.OvsPaths
    labs: set[str] = field(default_factory=set)
    bridges: set[str] = field(default_factory=set)  # ovs-vsctl bridges that may still exist
    made: set[str] = field(default_factory=set)  # every bridge name of the run (vnet's too)

    @property
    def prefix(self) -> str:
        return f"ob{self.ident}"

    @property
    def probe_ns(self) -> str:
        return f"{self.prefix}-probe"

    def namespace(self, variant: str, k: int) -> str:
        return f"{self.prefix}-{variant}-n{k}"

    def host_end(self, variant: str, k: int, side: str) -> str:
        return f"{self.prefix}{variant}{k:03d}{side}"  # 11 characters


def sh(*argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, input=stdin, text=True, capture_output=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done


def vsctl(run: Run, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ovs-vsctl", f"--db={run.paths.remote}", "--timeout=300", *args, check=check)


# --- the private OVS ----------------------------------------------------------------------------

def _ours(pid: int, run_dir: str) -> bool:
    try:
        return run_dir.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_ovs(paths: ovs_daemon.OvsPaths) -> None:
    """By the pids vnet recorded, then by the private pidfiles (checked against the command line)."""
    with contextlib.suppress(Exception):
        ovs_daemon.stop(paths)
    for pidfile in ("ovs-vswitchd.pid", "ovsdb-server.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(Path(paths.file(pidfile)).read_text().strip())
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if not _ours(pid, paths.run_dir):
                    break
                os.kill(pid, sig)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and _ours(pid, paths.run_dir):
                    time.sleep(0.05)


def cleanup(run: Run) -> list[str]:
    problems: list[str] = []
    for lab in sorted(run.labs):
        try:
            api.destroy(lab, wait=True, ovsdb=run.paths.remote)
        except Exception as exc:  # keep going: everything of the run must go
            problems.append(f"vnet destroy --lab {lab}: {exc}")
    if ovs_daemon.answering(run.paths.socket):
        for bridge in sorted(run.bridges):
            done = vsctl(run, "--if-exists", "del-br", bridge, check=False)
            if done.returncode != 0:
                problems.append(f"del-br {bridge}: {done.stderr.strip()}")
    mine = [name for name in netns.names() if name.startswith(f"{run.prefix}-")]
    if mine:
        sh("ip", "-batch", "-", stdin="".join(f"netns del {n}\n" for n in mine), check=False)
    stop_ovs(run.paths)
    # A netdev bridge's own port is a persistent TAP device that vswitchd deletes with the bridge;
    # if it could not (stopped first, or too slow), the device is left: remove ours by name.
    for name in sorted(run.made):
        if os.path.exists(f"/sys/class/net/{name}"):
            sh("ip", "link", "del", name, check=False)
    shutil.rmtree(run.paths.run_dir, ignore_errors=True)
    shutil.rmtree(run.workdir, ignore_errors=True)
    return problems


# --- waiting for a quiet kernel -----------------------------------------------------------------

def settle(run: Run, limit: float = 60.0) -> float:
    """Wait until 50 trivial RTNL-taking requests take < 1 ms ten times in a row; return the wait."""
    with netns.entered(run.probe_ns):
        sock = NetlinkSocket()
    start = time.perf_counter()
    quiet = 0
    with sock:
        batch = [wire.new_link(index=1, alias=f"probe{i}") for i in range(50)]
        while quiet < 10 and time.perf_counter() - start < limit:
            t0 = time.perf_counter()
            sock.check(batch)
            quiet = quiet + 1 if time.perf_counter() - t0 < 1e-3 else 0
            time.sleep(0.05)
    return time.perf_counter() - start


# --- 1. vnet --------------------------------------------------------------------------------------

def topology_yaml(run: Run, nodes: int, addresses: bool) -> str:
    lab = run.prefix
    lines = [f"# {2 * nodes} OVS ports for bench/ovs_bench.py", f"name: {lab}"]
    if addresses:
        lines += ["networks:", "  pa: {subnet: 198.18.0.0/22}", "  pb: {subnet: 198.18.4.0/22}"]
    lines += ["switches:"] + [f"  {lab}{side}: {{type: ovs, datapath: netdev}}" for side in "ab"]
    lines += ["nodes:"] + [f"  n{k}: {{kind: netns}}" for k in range(1, nodes + 1)]
    lines += ["links:"]
    for k in range(1, nodes + 1):
        for iface, side in (("eth0", "a"), ("eth1", "b")):
            pool = f", network: p{side}" if addresses else ""
            lines.append(f"  - {{endpoints: [n{k}:{iface}, {lab}{side}], vlan: {10 + k % TAGS}{pool}}}")
    return "\n".join(lines) + "\n"


NOOP_REPEAT = 5
# Stages of a no-op apply, timed by wrapping the functions where their callers look them up
# (vnet.api, the pipeline's stages, the kernel and OVS mechanisms).
STAGES = (("vnet.pipeline.stages", "desired_state", "compile"),
          ("vnet.mechanisms.kernel.observe", "scan", "kernel scan (netlink dumps)"),
          ("vnet.mechanisms.kernel.observe", "observe", "kernel observe (scan -> resources)"),
          ("vnet.mechanisms.ovs", "OvsdbClient", "OVSDB connect (no IDL replica)"),
          ("vnet.mechanisms.ovs.observe", "observe", "OVSDB select, rows -> resources"),
          ("vnet.pipeline.stages", "match", "match (findings -> desired keys)"),
          ("vnet.api", "make_plan", "diff + plan"))


def timed_load(path: Path, parts: dict[str, list[float]]) -> vnet.Lab:
    t0 = time.perf_counter()
    lab = vnet.load(str(path))
    parts.setdefault("load", []).append(time.perf_counter() - t0)
    return lab


@contextlib.contextmanager
def stopwatches(parts: dict[str, list[float]]) -> Iterator[None]:
    """Time each stage of STAGES (summed per call of the block) into `parts`."""
    spent = dict.fromkeys((label for _, _, label in STAGES), 0.0)
    saved = []
    for module_name, name, label in STAGES:
        module = sys.modules[module_name]
        real = getattr(module, name)

        def wrapper(*args: Any, _real: Any = real, _label: str = label, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return _real(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - t0

        saved.append((module, name, real))
        setattr(module, name, wrapper)
    try:
        yield
    finally:
        for module, name, real in saved:
            setattr(module, name, real)
        for label, seconds in spent.items():
            parts.setdefault(label, []).append(seconds)


def measure_vnet(run: Run, path: Path, nodes: int) -> dict[str, float]:
    remote = run.paths.remote
    in_ovsdb: list[float] = []
    real = OvsDriver.execute

    def timed(self: OvsDriver, changes: Sequence[Change]) -> list[Failure | None]:
        t0 = time.perf_counter()
        try:
            return real(self, changes)
        finally:
            in_ovsdb.append(time.perf_counter() - t0)

    out: dict[str, float] = {}
    settle(run)
    OvsDriver.execute = timed  # type: ignore[method-assign]
    try:
        lab = vnet.load(str(path))
        run.labs.add(lab.name)
        t0 = time.perf_counter()
        report = api.apply(lab, ovsdb=remote)
        out["apply"] = time.perf_counter() - t0
    finally:
        OvsDriver.execute = real  # type: ignore[method-assign]
    out["ovsdb"] = sum(in_ovsdb)
    out["transactions"] = len(in_ovsdb)
    ports = sum(c.key[0] == "ovs-port" for c in report.plan.changes)
    if ports != 2 * nodes:
        raise SystemExit(f"vnet apply created {ports} OVS ports, expected {2 * nodes}")
    check_ofports(run, {f"{run.prefix}a", f"{run.prefix}b"}, 2 * nodes)
    settle(run)
    t0 = time.perf_counter()
    plan = api.plan(vnet.load(str(path)), ovsdb=remote)
    out["noop plan"] = time.perf_counter() - t0
    if not plan.empty:
        raise SystemExit(f"no-op plan is not empty: {plan.counts()}")
    totals: list[float] = []
    parts: dict[str, list[float]] = {}
    for _ in range(NOOP_REPEAT):
        with stopwatches(parts):
            t0 = time.perf_counter()
            again = api.apply(timed_load(path, parts), ovsdb=remote)
            totals.append(time.perf_counter() - t0)
        if not again.plan.empty:
            raise SystemExit(f"no-op apply is not empty: {again.plan.counts()}")
    out["noop apply"] = statistics.median(totals)
    out["noop apply min"] = min(totals)
    out.update({f"noop {k}": statistics.median(v) for k, v in parts.items()})
    settle(run)
    t0 = time.perf_counter()
    api.destroy(lab.name, ovsdb=remote)
    out["destroy"] = time.perf_counter() - t0
    run.labs.discard(lab.name)
    return out


def check_ofports(run: Run, bridges: set[str], expected: int) -> None:
    """Every port of `bridges` (but their own) got an OpenFlow port and has no error."""
    names = set()
    for bridge in bridges:
        names |= set(vsctl(run, "list-ports", bridge).stdout.split())
    data = json.loads(vsctl(run, "--format=json", "--columns=name,ofport,error", "list", "Interface").stdout)
    bad = [row for row in data["data"] if row[0] in names
           and (not isinstance(row[1], int) or row[1] <= 0 or row[2] != ["set", []])]
    if len(names) != expected or bad:
        raise SystemExit(f"expected {expected} working ports, found {len(names)}; broken: {bad[:3]}")


# --- 2. and 3. ovs-vsctl ------------------------------------------------------------------------

def prepare(run: Run, variant: str, nodes: int) -> list[tuple[str, str, int]]:
    """Namespaces, veth pairs (node ends inside) and two fresh netdev bridges; (bridge, port, tag)."""
    lines: list[str] = []
    ports: list[tuple[str, str, int]] = []
    for k in range(1, nodes + 1):
        ns = run.namespace(variant, k)
        lines.append(f"netns add {ns}")
        for iface, side in (("eth0", "a"), ("eth1", "b")):
            host = run.host_end(variant, k, side)
            lines += [f"link add {host} type veth peer name {iface} netns {ns}", f"link set {host} up"]
            ports.append((f"{run.prefix}{variant}{side}", host, 10 + k % TAGS))
    sh("ip", "-batch", "-", stdin="\n".join(lines) + "\n")
    for side in "ab":
        bridge = f"{run.prefix}{variant}{side}"
        run.bridges.add(bridge)
        run.made.add(bridge)
        vsctl(run, "add-br", bridge, "--", "set", "Bridge", bridge, "datapath_type=netdev")
    return ports


def teardown(run: Run, variant: str, nodes: int) -> float:
    t0 = time.perf_counter()
    for side in "ab":
        bridge = f"{run.prefix}{variant}{side}"
        vsctl(run, "del-br", bridge)
        run.bridges.discard(bridge)
    elapsed = time.perf_counter() - t0
    sh("ip", "-batch", "-", stdin="".join(f"netns del {run.namespace(variant, k)}\n"
                                           for k in range(1, nodes + 1)))
    return elapsed


def measure_loop(run: Run, nodes: int) -> tuple[float, float, list[float]]:
    ports = prepare(run, "l", nodes)
    settle(run)
    each: list[float] = []
    t0 = time.perf_counter()
    for bridge, port, tag in ports:
        t1 = time.perf_counter()
        vsctl(run, "add-port", bridge, port, f"tag={tag}")
        each.append(time.perf_counter() - t1)
    elapsed = time.perf_counter() - t0
    check_ofports(run, {bridge for bridge, _, _ in ports}, len(ports))
    settle(run)
    return elapsed, teardown(run, "l", nodes), each


def measure_single(run: Run, nodes: int) -> tuple[float, float]:
    ports = prepare(run, "s", nodes)
    argv: list[str] = []
    for bridge, port, tag in ports:
        argv += ["--", "add-port", bridge, port, f"tag={tag}"]
    settle(run)
    t0 = time.perf_counter()
    vsctl(run, *argv)
    elapsed = time.perf_counter() - t0
    check_ofports(run, {bridge for bridge, _, _ in ports}, len(ports))
    settle(run)
    return elapsed, teardown(run, "s", nodes)


# --- the report ---------------------------------------------------------------------------------

def report(nodes: int, v: dict[str, float], loop: tuple[float, float, list[float]],
           single: tuple[float, float], load: tuple[float, float]) -> bool:
    ports = 2 * nodes
    loop_ratio, single_ratio = loop[0] / v["apply"], single[0] / v["apply"]
    rows = [
        (f"vnet apply: {nodes} netns, {ports} veth pairs, 2 bridges, {ports} ports (API)", v["apply"],
         "1.00"),
        (f"  of which the OVSDB transaction ({int(v['transactions'])}; until vswitchd applied it)",
         v["ovsdb"], ""),
        (f"ovs-vsctl add-port, one process per port ({ports} processes)", loop[0],
         f"{loop_ratio:.2f}"),
        (f"one ovs-vsctl call with {ports} add-port", single[0], f"{single_ratio:.2f}"),
        ("vnet no-op plan", v["noop plan"], ""),
        (f"vnet no-op re-apply, load included (median of {NOOP_REPEAT}; min {v['noop apply min']:.3f})",
         v["noop apply"], ""),
        *[(f"  {label}", v[f"noop {label}"], "")
          for label in ("load", *(stage for _, _, stage in STAGES))],
        ("vnet destroy (namespaces, veths, both bridges)", v["destroy"], ""),
        ("ovs-vsctl del-br of both bridges (per-port run; not counted above)", loop[1], ""),
    ]
    print("\n| step | seconds | time / vnet apply |\n|---|---:|---:|")
    for what, seconds, ratio in rows:
        print(f"| {what} | {seconds:.3f} | {ratio} |")
    print(f"\nload average {load[0]:.2f} at the start, {load[1]:.2f} at the end")
    first, last = loop[2][:50], loop[2][-50:]
    print(f"ovs-vsctl add-port, median per process: first 50 ports {statistics.median(first) * 1e3:.1f} ms, "
          f"last 50 {statistics.median(last) * 1e3:.1f} ms (each waits until vswitchd has reconfigured)")
    print(f"per-port ovs-vsctl loop / vnet apply = {loop_ratio:.1f}x (required: >= 5x)")
    print(f"single ovs-vsctl call / vnet apply = {single_ratio:.2f}x "
          f"(OVSDB part only: {single[0] / v['ovsdb']:.2f}x)")
    print(f"no-op re-apply {v['noop apply']:.3f} s (required: < 0.5 s)")
    ok = loop_ratio >= 5 and v["noop apply"] < 0.5 and v["transactions"] == 1
    print("requirements met" if ok else "REQUIREMENTS NOT MET")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--nodes", type=int, default=250, help="namespaces (2 OVS ports each; default 250)")
    parser.add_argument("--addresses", action="store_true", help="also give every vnet interface an address")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("ovs_bench needs root (it starts OVS and builds namespaces)", file=sys.stderr)
        return 77
    if not 1 <= args.nodes <= 999:
        parser.error("--nodes must be between 1 and 999")
    ident = secrets.token_hex(2)
    workdir = Path(tempfile.mkdtemp(prefix=f"ovs_bench-{ident}-"))
    run = Run(ident, workdir, ovs_daemon.OvsPaths.private(tempfile.mkdtemp(prefix="ovsb-", dir="/tmp")))

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    try:
        sh("ip", "netns", "add", run.probe_ns)
        ovs_daemon.start(run.paths)
        run.made |= {f"{run.prefix}a", f"{run.prefix}b"}  # the vnet lab's bridges
        path = workdir / "ovs500.yaml"
        path.write_text(topology_yaml(run, args.nodes, args.addresses))
        load_start = os.getloadavg()[0]
        print(f"{2 * args.nodes} OVS ports on 2 netdev bridges, {args.nodes} namespaces; run {run.prefix}; "
              f"private OVS in {run.paths.run_dir}; load average {load_start:.2f}", flush=True)
        timings = measure_vnet(run, path, args.nodes)
        print(f"  vnet apply {timings['apply']:.3f} s", flush=True)
        loop = measure_loop(run, args.nodes)
        print(f"  per-port ovs-vsctl {loop[0]:.3f} s", flush=True)
        single = measure_single(run, args.nodes)
        print(f"  single ovs-vsctl {single[0]:.3f} s", flush=True)
        return 0 if report(args.nodes, timings, loop, single, (load_start, os.getloadavg()[0])) else 1
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        for problem in cleanup(run):
            print(f"cleanup: {problem}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a Mininet-style linear,N lab built by vnet vs raw `ip -batch` (the floor) vs Mininet.

    .venv/bin/python bench/linear_bench.py [--n 100] [--repeat 3] [--skip-mininet] [--skip-1000]
                                           [--floor-1000]

Root only. The lab: hosts h1..hN (netns), Linux bridges s1..sN, hK linked to sK and sK to
sK+1 (2N-1 links), every host addressed from one pool in 198.18.0.0/15. All names are unique
to the run (`lb<run>`), nothing is routed outside the lab, and everything the script made is
removed at the end, also after a failure or Ctrl-C (only its own names are touched).

Measured in one run, `--repeat` times where cheap (median and min are reported):
1. floor: the same objects built by `ip -batch -` (namespaces, bridges, veth pairs with the
   peer created in its namespace, master, up; then IPv6 off on the host-side devices through
   /proc/sys, as vnet does), then a second batch of one `netns exec NS ip
   -batch FILE` per host (lo up, eth0 up, address: a batch line cannot target a namespace and
   the kernel refuses IFF_UP for a peer created in another namespace); torn down by one batch
   of `netns del` plus `link del group G`, timed until the group is empty;
2. vnet: `vnet.api.apply(vnet.load(FILE))`, no-op `plan` and re-apply, `destroy` (until it
   returns, and until the bridges it retired are deleted by its background reaper); the same
   through the CLI (`vnet apply|plan|destroy` as subprocesses, interpreter start-up included);
   one `vnet.api.verify` (time and probe count);
3. Mininet 2.3: `mn --topo linear,N --switch lxbr --controller none --test none` (build and
   teardown), once; skipped with a hint when `mn` is missing;
4. deleting a fresh vnet lab's host devices one RTM_DELLINK at a time, vs `vnet destroy`;
5. N=1000 with vnet: apply, no-op plan, destroy, once (with `--floor-1000` also the ip -batch
   floor at N=1000: the kernel is superlinear here, so N=100's floor does not scale).

Before each timed step the script waits until rtnetlink is quiet (a fresh lab keeps kworkers
busy under the RTNL lock for a while: IPv6 autoconfiguration, namespace cleanup), so that no
step pays for the previous one; the load average is printed, as other work on the machine
distorts every figure. Results: bench/README.md.

Mininet's own `mn -c` is deliberately not run: it kills processes by name (killall, pkill -f),
deletes every OVS bridge on the host and removes /tmp/*.log. After a Mininet run the script
instead removes only what its own `mn` left: devices with Mininet's names (`sK`, `sK-ethJ`,
`hK-ethJ`) that appeared during the run, and the `mininet:hK` shells of that `mn` (by pid).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import vnet
from vnet import api
from vnet.host import netns
from vnet.marks import lab_prefix
from vnet.mechanisms.kernel.host import KernelHost
from vnet.mechanisms.kernel.teardown import reapers_running
from vnet.netlink import NetlinkSocket, wire
from vnet.resources import HOST

VNET = str(Path(sys.executable).with_name("vnet"))
POOL_BASE = (198 << 24) | (18 << 16)  # 198.18.0.0/15


def address(k: int) -> str:
    value = POOL_BASE + k
    return ".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0)) + "/15"


# --- the topology ----------------------------------------------------------------------------

def topology_yaml(lab: str, n: int) -> str:
    lines = [f"# linear,{n} for bench/linear_bench.py", f"name: {lab}",
             "networks:", "  pool: {subnet: 198.18.0.0/15}", "switches:"]
    lines += [f"  {lab}s{k}: {{type: linux}}" for k in range(1, n + 1)]
    lines += ["nodes:"] + [f"  h{k}: {{kind: netns}}" for k in range(1, n + 1)]
    lines += ["links:"]
    lines += [f"  - {{endpoints: [h{k}:eth0, {lab}s{k}], network: pool}}" for k in range(1, n + 1)]
    lines += [f"  - {{endpoints: [{lab}s{k}, {lab}s{k + 1}]}}" for k in range(1, n)]
    return "\n".join(lines) + "\n"


# --- bookkeeping: what this run made, so that it can always be removed ------------------------

@dataclass
class Run:
    ident: str
    workdir: Path
    group: int
    labs: set[str] = field(default_factory=set)
    mininet_before: tuple[set[str], set[int]] | None = None
    mininet_proc: subprocess.Popen[bytes] | None = None

    @property
    def floor_prefix(self) -> str:
        return f"lb{self.ident}"

    def floor_ns(self, k: int) -> str:
        return f"lb{self.ident}f-h{k}"

    @property
    def probe_ns(self) -> str:
        return f"lb{self.ident}-probe"


def sh(*argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, input=stdin, text=True, capture_output=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done


def link_names(group: int | None = None) -> dict[str, int]:
    """name -> ifindex of the host's devices (of one group)."""
    argv = ["ip", "-o", "link", "show"] + (["group", str(group)] if group is not None else [])
    names = {}
    for line in sh(*argv).stdout.splitlines():
        index, name = line.split(":", 2)[:2]
        names[name.strip().split("@")[0]] = int(index)
    return names


def cleanup(run: Run) -> list[str]:
    """Remove everything of this run: its labs, its floor objects, Mininet leftovers."""
    problems: list[str] = []
    for lab in sorted(run.labs):
        try:
            api.destroy(lab)
        except Exception as exc:  # fall back to the CLI, then report
            done = sh(VNET, "destroy", "--lab", lab, check=False)
            if done.returncode != 0:
                problems.append(f"vnet destroy --lab {lab}: {exc}; {done.stderr.strip()}")
    for name in netns.names():
        if name.startswith(f"lb{run.ident}"):
            sh("ip", "netns", "del", name, check=False)
    for name in link_names():
        if name.startswith(run.floor_prefix):
            sh("ip", "link", "del", name, check=False)
    problems += cleanup_mininet(run)
    shutil.rmtree(run.workdir, ignore_errors=True)
    return problems


# --- waiting for a quiet kernel ---------------------------------------------------------------

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



# --- 1. the floor: ip -batch --------------------------------------------------------------------

def floor_lines(run: Run, n: int) -> tuple[list[str], list[str]]:
    """The host-side batch (namespaces, bridges, veths, master, up) and the namespace batch.

    The kernel refuses IFF_UP for a veth peer created straight into another namespace
    (ENOTCONN), and a batch line cannot target a namespace: each namespace gets one
    `netns exec NS ip -batch FILE` (lo up, eth0 up, address), as vnet sets lo and eth0 up too."""
    p, g = run.floor_prefix, run.group
    host: list[str] = []
    for k in range(1, n + 1):
        host += [f"netns add {run.floor_ns(k)}",
                 f"link add {p}b{k} group {g} up type bridge",
                 f"link add {p}h{k} group {g} master {p}b{k} up type veth peer name eth0 "
                 f"netns {run.floor_ns(k)}"]
    for k in range(1, n):  # the peer's master cannot be given at creation: one more line
        host += [f"link add {p}l{k} group {g} master {p}b{k} up type veth peer name {p}r{k} group {g}",
                 f"link set {p}r{k} master {p}b{k + 1} up"]
    inside: list[str] = []
    for k in range(1, n + 1):
        batch = run.workdir / f"{run.floor_ns(k)}.batch"
        batch.write_text(f"link set lo up\nlink set eth0 up\naddr add {address(k)} dev eth0\n")
        inside.append(f"netns exec {run.floor_ns(k)} ip -batch {batch}")
    return host, inside


def host_side_names(run: Run, n: int) -> list[str]:
    p = run.floor_prefix
    return ([f"{p}b{k}" for k in range(1, n + 1)] + [f"{p}h{k}" for k in range(1, n + 1)]
            + [f"{p}{side}{k}" for k in range(1, n) for side in "lr"])


def floor_build(run: Run, n: int) -> dict[str, float]:
    host, inside = floor_lines(run, n)
    t0 = time.perf_counter()
    sh("ip", "-batch", "-", stdin="\n".join(host) + "\n")
    for name in host_side_names(run, n):  # as vnet does: no IPv6 on host-side devices
        with contextlib.suppress(OSError), open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("1")
    t1 = time.perf_counter()
    sh("ip", "-batch", "-", stdin="\n".join(inside) + "\n")
    t2 = time.perf_counter()
    devices = link_names(run.group)
    if len(devices) != 4 * n - 2:
        raise SystemExit(f"floor: expected {4 * n - 2} devices in group {run.group}, found {len(devices)}")
    last = sh("ip", "-n", run.floor_ns(n), "-o", "addr", "show", "dev", "eth0", "up").stdout
    if address(n) not in last:
        raise SystemExit(f"floor: {run.floor_ns(n)} lacks {address(n)} on an up eth0: {last!r}")
    return {"build": t2 - t0, "host batch": t1 - t0, "namespace batch": t2 - t1}


def floor_teardown(run: Run, n: int) -> float:
    foreign = [name for name in link_names(run.group) if not name.startswith(run.floor_prefix)]
    if foreign:  # `link del group` would take them too
        raise SystemExit(f"device group {run.group} holds devices of someone else: {foreign[:3]}")
    lines = [f"netns del {run.floor_ns(k)}" for k in range(1, n + 1)] + [f"link del group {run.group}"]
    t0 = time.perf_counter()
    sh("ip", "-batch", "-", stdin="\n".join(lines) + "\n")
    while link_names(run.group):
        time.sleep(0.005)
    return time.perf_counter() - t0


# --- 2. vnet -------------------------------------------------------------------------------------

def vnet_cycle(run: Run, path: Path, n: int, timings: dict[str, list[float]]) -> None:
    """API: apply, no-op plan, no-op apply, destroy (each after a quiet kernel)."""
    settle(run)
    t0 = time.perf_counter()
    lab = vnet.load(str(path))
    run.labs.add(lab.name)
    t1 = time.perf_counter()
    report = api.apply(lab)
    t2 = time.perf_counter()
    timings["load"].append(t1 - t0)
    timings["apply"].append(t2 - t0)
    if len(report.plan.changes) != 5 * n - 1:  # n netns + n bridges + (2n-1) veth + n addresses
        raise SystemExit(f"vnet apply made {len(report.plan.changes)} changes, expected {5 * n - 1}")
    settle(run)
    t0 = time.perf_counter()
    plan = api.plan(vnet.load(str(path)))
    timings["plan"].append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    again = api.apply(vnet.load(str(path)))
    timings["noop apply"].append(time.perf_counter() - t0)
    if not plan.empty or not again.plan.empty:
        raise SystemExit(f"no-op plan/apply is not empty: {plan.counts()} / {again.plan.counts()}")
    settle(run)
    t0 = time.perf_counter()
    gone = api.destroy(lab.name)
    timings["destroy"].append(time.perf_counter() - t0)
    timings["destroy reaped"].append(until_reaped(lab.name) - t0)
    run.labs.discard(lab.name)
    if gone.namespaces != n:  # (its device count is racy: namespaces take veth host ends along)
        raise SystemExit(f"vnet destroy removed {gone.namespaces} namespaces, expected {n}")


def until_reaped(lab: str, limit: float = 60.0) -> float:
    """perf_counter() when the bridges destroy retired (alias vnet-reap:<lab>:) are gone from the
    kernel and the lab's reaper has exited: when the teardown is really complete."""
    mark = f"vnet-reap:{lab}:"
    deadline = time.perf_counter() + limit
    with KernelHost() as host:
        while time.perf_counter() < deadline:
            host.invalidate()
            left = any((link.alias or "").startswith(mark) for link in host.links(HOST).values())
            if not left and lab not in reapers_running():
                break
            time.sleep(0.005)
    return time.perf_counter()


def cli(*argv: str) -> float:
    t0 = time.perf_counter()
    done = subprocess.run([VNET, *argv], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"vnet {' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def vnet_cli_cycle(run: Run, path: Path, lab: str, timings: dict[str, list[float]]) -> None:
    settle(run)
    run.labs.add(lab)
    timings["cli apply"].append(cli("apply", str(path)))
    settle(run)
    timings["cli plan"].append(cli("plan", str(path)))
    settle(run)
    t0 = time.perf_counter()
    timings["cli destroy"].append(cli("destroy", "--lab", lab))
    timings["cli destroy reaped"].append(until_reaped(lab) - t0)
    run.labs.discard(lab)


def vnet_verify(run: Run, path: Path) -> tuple[float, int, bool]:
    lab = vnet.load(str(path))
    run.labs.add(lab.name)
    api.apply(lab)
    settle(run)
    t0 = time.perf_counter()
    report = api.verify(lab)
    elapsed = time.perf_counter() - t0
    api.destroy(lab.name)
    run.labs.discard(lab.name)
    return elapsed, len(report.outcomes), report.ok


# --- 3. Mininet -----------------------------------------------------------------------------------

MININET_LINK = re.compile(r"^(s\d+|[hs]\d+-eth\d+)$")


def mininet_shells(parent: int | None = None) -> set[int]:
    """Mininet's host shells (`bash ... mininet:hK`), optionally only the children of `parent`."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if b"mininet:" not in (entry / "cmdline").read_bytes():
                    continue
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if parent is None or ppid == parent:
                    pids.add(int(entry.name))
    return pids


def mininet(run: Run, n: int) -> tuple[float, float | None]:
    """Wall time of `mn` (build + teardown), and Mininet's own 'completed in' figure."""
    run.mininet_before = (set(link_names()), mininet_shells())
    argv = ["mn", "--topo", f"linear,{n}", "--switch", "lxbr", "--controller", "none", "--test", "none"]
    t0 = time.perf_counter()
    run.mininet_proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
    out, _ = run.mininet_proc.communicate()
    elapsed = time.perf_counter() - t0
    text = out.decode(errors="replace")
    if run.mininet_proc.returncode != 0:
        raise SystemExit(f"mn failed ({run.mininet_proc.returncode}):\n{text[-2000:]}")
    run.mininet_proc = None
    own = re.search(r"completed in ([0-9.]+) seconds", text)
    return elapsed, float(own.group(1)) if own else None


def cleanup_mininet(run: Run) -> list[str]:
    """Stop our `mn` if it still runs; remove devices and shells that appeared during its run."""
    if run.mininet_before is None:
        return []
    proc = run.mininet_proc
    ours: set[int] = set()
    if proc is not None and proc.poll() is None:
        ours = mininet_shells(parent=proc.pid)  # its host shells, by id, before it goes
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    links_before, shells_before = run.mininet_before
    orphans = mininet_shells(parent=1) - shells_before  # shells of ours whose `mn` died first
    for pid in (ours | orphans) & mininet_shells():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    left = [name for name in link_names() if name not in links_before and MININET_LINK.match(name)]
    for name in sorted(left, key=lambda name: "-" not in name):  # ports first, then bridges
        sh("ip", "link", "del", name, check=False)
    run.mininet_before = None
    return [f"removed Mininet leftovers: {', '.join(left[:5])}…"] if left else []


# --- 4. deleting one device at a time -------------------------------------------------------------

def one_by_one(run: Run, path: Path) -> tuple[float, int]:
    """Build the lab with vnet, then delete its host devices one RTM_DELLINK each, then its
    namespaces (what a tool without batch deletion does); returns time and device count."""
    lab = vnet.load(str(path))
    run.labs.add(lab.name)
    api.apply(lab)
    with KernelHost() as host:
        prefix = lab_prefix(lab.name)
        mine = [link.index for link in host.links(HOST).values() if (link.alias or "").startswith(prefix)]
        namespaces = [name for name in netns.names() if name.startswith(f"vnet-{lab.name}-")]
        sock = host.socket(HOST)
        settle(run)
        deleted = 0
        t0 = time.perf_counter()
        for index in mine:  # a veth end takes its peer along: ENODEV for the second end is fine
            ack = sock.transact([wire.del_link(index=index)])[0]
            if ack.errno not in (0, 19):
                raise SystemExit(f"RTM_DELLINK {index}: {ack.error()}")
            deleted += not ack.errno
        netns.delete(namespaces)
        elapsed = time.perf_counter() - t0
    api.destroy(lab.name)  # whatever is left, e.g. the lab's state directory
    run.labs.discard(lab.name)
    return elapsed, deleted


# --- 5. N = 1000 ----------------------------------------------------------------------------------

def big(run: Run, path: Path, with_floor: bool) -> dict[str, float]:
    out: dict[str, float] = {}

    def step(key: str, seconds: float) -> None:
        out[key] = seconds
        print(f"  {key}: {seconds:.2f} s (load average {os.getloadavg()[0]:.1f})", flush=True)

    if with_floor:
        settle(run, 600)
        step("floor build", floor_build(run, 1000)["build"])
        settle(run, 600)
        step("floor teardown", floor_teardown(run, 1000))
    lab = vnet.load(str(path))
    run.labs.add(lab.name)
    settle(run, 600)
    t0 = time.perf_counter()
    api.apply(vnet.load(str(path)))
    step("apply", time.perf_counter() - t0)
    settle(run, 600)
    t0 = time.perf_counter()
    plan = api.plan(vnet.load(str(path)))
    step("plan", time.perf_counter() - t0)
    if not plan.empty:
        raise SystemExit(f"N=1000: no-op plan is not empty: {plan.counts()}")
    settle(run, 600)
    t0 = time.perf_counter()
    api.destroy(lab.name)
    step("destroy", time.perf_counter() - t0)
    run.labs.discard(lab.name)
    return out


# --- the report -----------------------------------------------------------------------------------

@dataclass
class Row:
    what: str
    samples: list[float]
    ratio: str = ""
    target: str = ""
    ok: bool | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


def pairwise_sum(a: list[float], b: list[float]) -> list[float]:
    return [x + y for x, y in zip(a, b, strict=True)]


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x"


def print_table(title: str, rows: list[Row]) -> None:
    width = max(len(r.what) for r in rows)
    print(f"\n{title}")
    print(f"{'measurement':<{width}}  {'median s':>9}  {'min s':>7}  {'n':>2}  {'ratio':<36}  target")
    for r in rows:
        verdict = "" if r.ok is None else ("  PASS" if r.ok else "  MISS")
        print(f"{r.what:<{width}}  {r.median:>9.3f}  {min(r.samples):>7.3f}  {len(r.samples):>2}  "
              f"{r.ratio:<36}  {r.target}{verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="hosts (and bridges) in the chain (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of the cheap measurements")
    parser.add_argument("--skip-mininet", action="store_true", help="do not run Mininet")
    parser.add_argument("--skip-1000", action="store_true", help="do not build the N=1000 lab")
    parser.add_argument("--floor-1000", action="store_true",
                        help="also build and tear down the N=1000 floor with ip -batch (slow)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("linear_bench needs root (it builds namespaces and bridges)", file=sys.stderr)
        return 77
    if not 2 <= args.n <= 9999:
        parser.error("--n must be between 2 and 9999")
    ident = secrets.token_hex(2)
    run = Run(ident, Path(tempfile.mkdtemp(prefix=f"linear_bench-{ident}-")),
              0x4C420000 | secrets.randbits(16))

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    try:
        sh("ip", "netns", "add", run.probe_ns)
        return measure(run, args)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        for problem in cleanup(run):
            print(f"cleanup: {problem}", file=sys.stderr)


@dataclass
class Results:
    n: int
    repeat: int
    load_start: float
    floor: dict[str, list[float]]
    vnet: dict[str, list[float]]
    startup: list[float] = field(default_factory=list)
    verify: tuple[float, int, bool] = (0.0, 0, False)
    one_by_one: tuple[float, int] = (0.0, 0)
    mininet: tuple[float, float | None] | None = None
    thousand: dict[str, float] | None = None


def measure(run: Run, args: argparse.Namespace) -> int:
    n = args.n
    lab, big_lab = f"lb{run.ident}", f"lb{run.ident}k"
    path, big_path = run.workdir / f"linear{n}.yaml", run.workdir / "linear1000.yaml"
    path.write_text(topology_yaml(lab, n))
    big_path.write_text(topology_yaml(big_lab, 1000))
    out = Results(n, args.repeat, os.getloadavg()[0],
                  {k: [] for k in ("build", "host batch", "namespace batch", "teardown")},
                  {k: [] for k in ("load", "apply", "plan", "noop apply", "destroy", "destroy reaped",
                                   "cli apply", "cli plan", "cli destroy", "cli destroy reaped")})
    print(f"linear,{n}: {n} namespaces, {n} bridges, {2 * n - 1} veth pairs ({4 * n - 2} host devices), "
          f"{n} addresses; run {run.ident}, {args.repeat} repetitions; load average {out.load_start:.2f}",
          flush=True)
    for rep in range(args.repeat):
        settle(run)
        for key, value in floor_build(run, n).items():
            out.floor[key].append(value)
        settle(run)
        out.floor["teardown"].append(floor_teardown(run, n))
        vnet_cycle(run, path, n, out.vnet)
        vnet_cli_cycle(run, path, lab, out.vnet)
        floor, done = out.floor, out.vnet
        print(f"  repetition {rep + 1}: floor {floor['build'][-1]:.3f} + {floor['teardown'][-1]:.3f} s, "
              f"vnet {done['apply'][-1]:.3f} + {done['destroy'][-1]:.3f} s", flush=True)
    out.startup = [cli("--version") for _ in range(args.repeat)]
    out.verify = vnet_verify(run, path)
    print(f"  verify: {out.verify[1]} probes in {out.verify[0]:.2f} s", flush=True)
    settle(run)
    out.one_by_one = one_by_one(run, path)
    print(f"  one by one: {out.one_by_one[1]} RTM_DELLINK in {out.one_by_one[0]:.2f} s", flush=True)
    if not args.skip_mininet:
        if shutil.which("mn") is None or shutil.which("brctl") is None:
            print("  Mininet: skipped, `mn` or `brctl` is missing; install with "
                  "`apt-get install -y mininet bridge-utils` (lxbr switches need brctl)", flush=True)
        else:
            settle(run)
            out.mininet = mininet(run, n)
            cleanup_mininet(run)
            print(f"  Mininet: {out.mininet[0]:.2f} s", flush=True)
    misses = report(out)  # printed now: the N=1000 part takes minutes
    if not args.skip_1000:
        print("\nN=1000: building (minutes: see bench/README.md)", flush=True)
        out.thousand = big(run, big_path, args.floor_1000)
        print_table("linear,1000 (1 run; completing is the target)", thousand_rows(out.thousand))
    if misses:
        print(f"\ntargets missed: {'; '.join(misses)}")
    return 0


def report(out: Results) -> list[str]:
    """Print the linear,N table; returns the targets it missed."""
    med = statistics.median
    floor, t = out.floor, out.vnet
    fb, ft, hb = med(floor["build"]), med(floor["teardown"]), med(floor["host batch"])
    ap, de, cap, cde = med(t["apply"]), med(t["destroy"]), med(t["cli apply"]), med(t["cli destroy"])
    der, cder = med(t["destroy reaped"]), med(t["cli destroy reaped"])
    one_s, one_count = out.one_by_one
    verify_s, probes, verify_ok = out.verify
    rows = [
        Row("floor: ip -batch build", floor["build"]),
        Row("  host-side batch, IPv6 off", floor["host batch"]),
        Row("  netns exec ip -batch, 1 per host", floor["namespace batch"]),
        Row("floor: ip -batch teardown", floor["teardown"]),
        Row("vnet apply (API, load included)", t["apply"],
            f"{ratio(ap, fb)} floor build ({ratio(ap, hb)} host-side)", "<= 2x floor", ap <= 2 * fb),
        Row("  of which vnet.load", t["load"]),
        Row("vnet apply (CLI, start-up included)", t["cli apply"], f"{ratio(cap, fb)} floor build"),
        Row("vnet --version (CLI start-up alone)", out.startup),
        Row("vnet plan, no-op (API)", t["plan"], "", "< 0.5 s", med(t["plan"]) < 0.5),
        Row("vnet apply, no-op (API)", t["noop apply"], "", "< 0.5 s", med(t["noop apply"]) < 0.5),
        Row("vnet plan, no-op (CLI)", t["cli plan"]),
        Row("vnet destroy (API), returned", t["destroy"], f"{ratio(de, ft)} floor teardown"),
        Row("  until the reaper deleted its bridges", t["destroy reaped"],
            f"{ratio(der, ft)} floor teardown"),
        Row("vnet destroy (CLI), returned", t["cli destroy"], f"{ratio(cde, ft)} floor teardown"),
        Row("  until the reaper deleted its bridges", t["cli destroy reaped"],
            f"{ratio(cder, ft)} floor teardown"),
        Row("vnet apply+destroy (API)", pairwise_sum(t["apply"], t["destroy"]),
            f"{ratio(ap + de, fb + ft)} floor build+teardown"),
        Row("  bridges deleted", pairwise_sum(t["apply"], t["destroy reaped"]),
            f"{ratio(ap + der, fb + ft)} floor build+teardown"),
        Row("vnet apply+destroy (CLI)", pairwise_sum(t["cli apply"], t["cli destroy"]),
            f"{ratio(cap + cde, fb + ft)} floor build+teardown"),
        Row(f"one by one: {one_count} RTM_DELLINK + netns del", [one_s],
            f"destroy (API) {ratio(one_s, de)} faster", "destroy faster", de < one_s),
        Row(f"vnet verify ({probes} probes, {'ok' if verify_ok else 'FAILED'})", [verify_s]),
    ]
    if out.mininet is not None:
        mn, own = out.mininet
        said = f" (mn says {own:.1f})" if own is not None else ""
        rows += [Row(f"Mininet build+teardown{said}", [mn], f"{ratio(mn, ap + de)} vnet apply+destroy (API)",
                     ">= 8x", mn >= 8 * (ap + de)),
                 Row("  vs vnet, bridges deleted", [mn], f"{ratio(mn, ap + der)} vnet apply+destroy (API)"),
                 Row("  Mininet, vs the vnet CLI", [mn], f"{ratio(mn, cap + cde)} vnet apply+destroy (CLI)",
                     ">= 8x", mn >= 8 * (cap + cde))]
    print_table(f"linear,{out.n}: median of {out.repeat} (verify, one by one, Mininet: 1 run); "
                f"load average {out.load_start:.2f} -> {os.getloadavg()[0]:.2f}", rows)
    return [r.what.strip() for r in rows if r.ok is False]


def thousand_rows(big_run: dict[str, float]) -> list[Row]:
    rows = []
    has_floor = "floor build" in big_run
    if has_floor:
        rows += [Row("floor: ip -batch build", [big_run["floor build"]]),
                 Row("floor: ip -batch teardown", [big_run["floor teardown"]])]

    def versus(key: str, floor: str) -> str:
        return f"{ratio(big_run[key], big_run[floor])} floor" if has_floor else ""

    rows.append(Row("vnet apply (API, load included)", [big_run["apply"]], versus("apply", "floor build")))
    rows.append(Row("vnet plan, no-op (API)", [big_run["plan"]]))
    rows.append(Row("vnet destroy (API)", [big_run["destroy"]], versus("destroy", "floor teardown")))
    return rows


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: tiny VMs brought up and proven by vnet, vs booting the same guest by hand.

    .venv/bin/python bench/vm_bench.py [--counts 2,8] [--memory 128]

Root only; QEMU under TCG when the CPU has no VT-x/AMD-V (as here). For each count N: a lab of
N tiny VMs on one Linux bridge (one subnet from 198.18.0.0/15; the derived matrix: every VM
must reach every other), then
1. `vnet.api.apply` (TAPs, the bridge, N QEMU processes started in parallel, until every
   guest agent answers) + `vnet.api.verify` (N*(N-1) pings from inside the guests), wall time;
2. each VM's resident memory (VmRSS of its QEMU process) after verify;
3. `vnet.api.destroy`.
The baseline, in the same run: one guest booted by hand with the same QEMU command line vnet
uses (no TAP: `-nic none`), until its agent answers; i.e. what a single boot costs here.
The issue's targets: N=2 apply+verify <= 20 s, N=8 <= 60 s, tiny memory default <= 128 MiB.
Lab names are unique to the run; the lab is destroyed at the end, also after a failure.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import vnet
from vnet import api
from vnet.mechanisms.qemu import process as qemu
from vnet.vm import tiny
from vnet.vm.agent import GuestAgent, agent_qemu_args

TARGETS = {2: 20.0, 8: 60.0}


def topology(name: str, count: int, memory: int) -> str:
    nodes = "\n".join(f"  vm{k}: {{kind: vm, image: tiny, memory: {memory}}}" for k in range(1, count + 1))
    links = "\n".join(f"  - {{endpoints: [vm{k}:eth0, {name}s], network: lan}}" for k in range(1, count + 1))
    return (f"name: {name}\nnetworks:\n  lan: {{subnet: 198.18.40.0/24}}\n"
            f"switches:\n  {name}s: {{type: linux}}\nnodes:\n{nodes}\nlinks:\n{links}\n")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def baseline(memory: int) -> float:
    """One tiny guest booted by hand (same kind of command line, no NIC) until its agent answers."""
    image = tiny.ensure_tiny()
    with tempfile.TemporaryDirectory(prefix="vmb-") as directory:
        sock = Path(directory) / "agent.sock"
        argv = [qemu.qemu_binary(), "-accel", "tcg", "-cpu", "max", "-m", str(memory), "-nodefaults",
                "-no-user-config", "-display", "none", "-serial", f"file:{directory}/serial.log",
                "-kernel", str(image.kernel), "-initrd", str(image.initrd),
                "-append", tiny.kernel_cmdline(tiny.GuestConfig("base")), *agent_qemu_args(sock)]
        started = time.monotonic()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        try:
            with GuestAgent(sock) as agent:
                agent.wait_ready(120)
            return time.monotonic() - started
        finally:
            proc.kill()
            proc.wait()


def run_lab(count: int, memory: int, directory: Path) -> dict[str, float]:
    name = f"vb{secrets.token_hex(3)}"
    path = directory / f"{name}.yaml"
    path.write_text(topology(name, count, memory))
    lab = vnet.load(str(path))
    try:
        started = time.monotonic()
        api.apply(lab)
        applied = time.monotonic()
        report = api.verify(lab)
        verified = time.monotonic()
        if not report.ok:
            raise SystemExit(f"verify failed: {report.to_json()}")
        rss = [rss_mib(vm.pid) for vm in qemu.running_vms(name)]
        return {"apply": applied - started, "verify": verified - applied, "total": verified - started,
                "probes": len(report.outcomes), "rss_max": max(rss), "rss_mean": sum(rss) / len(rss)}
    finally:
        api.destroy(name, wait=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--counts", default="2,8")
    parser.add_argument("--memory", type=int, default=128)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only")
    print(f"load average {os.getloadavg()[0]:.2f}; accel tcg unless KVM works: kvm={qemu.kvm_usable()}")
    base = baseline(args.memory)
    print(f"baseline: one tiny guest booted by hand until its agent answers: {base:.2f} s")
    failed = False
    with tempfile.TemporaryDirectory(prefix="vmb-") as directory:
        for count in (int(c) for c in args.counts.split(",")):
            r = run_lab(count, args.memory, Path(directory))
            target = TARGETS.get(count)
            verdict = "" if target is None else (" PASS" if r["total"] <= target else " MISS")
            failed |= verdict == " MISS"
            print(f"{count} VMs: apply {r['apply']:.2f} s + verify {r['verify']:.2f} s ({r['probes']:.0f} "
                  f"probes) = {r['total']:.2f} s ({r['total'] / base:.2f}x one boot by hand)"
                  f"{f'; target <= {target:.0f} s' if target else ''}{verdict}; "
                  f"QEMU RSS mean {r['rss_mean']:.0f} MiB, max {r['rss_max']:.0f} MiB")
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

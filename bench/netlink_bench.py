"""Benchmark: 100 bridges + 199 veth pairs through vnet's netlink batch vs pyroute2 vs `ip -batch`.

    .venv/bin/python bench/netlink_bench.py [--repeat N] [--bridges N]   (root)

The lab is a chain: bridge i has a "host" veth h<i> (its peer n<i> is what a node would get)
and is linked to bridge i+1 by a veth pair l<i>/r<i>. Every device gets a group, an alias,
its master and IFF_UP: 3 requests per bridge and per pair side, ~800 netlink requests in all.
Each method builds the same lab in a fresh private namespace (nothing touches the host
namespace), which is dumped (timing vnet's decoder and pyroute2's), compared with the other
methods' result and deleted. Before each run the script waits until rtnetlink is quiet: the
previous lab's devices keep kworkers busy under the RTNL lock (IPv6 autoconfiguration, then
the namespace cleanup: ~16 ms per bridge), which would otherwise slow the next run severalfold.
The load average is printed: other work on the machine distorts every figure.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pyroute2 import IPRoute

from vnet.netlink import NetlinkSocket, VethPeer, wire

GROUP = 4242
BR, HOST, NODE, LEFT, RIGHT = 1000, 2000, 3000, 4000, 5000  # explicit ifindex bases
_libc = ctypes.CDLL(None, use_errno=True)


@contextmanager
def entered(name: str) -> Iterator[None]:
    """This thread inside namespace `name` for the body (sockets opened there stay there)."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        yield
    finally:
        if _libc.setns(home, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        os.close(target)
        os.close(home)


def vnet_messages(n: int) -> list[bytes]:
    msgs = []
    for i in range(n):
        msgs += [wire.new_link(create=True, ifname=f"br{i}", index=BR + i, kind="bridge", group=GROUP,
                               up=True),
                 wire.new_link(index=BR + i, alias=f"vnet:b:br{i}")]
    for i in range(n):
        msgs += [wire.new_link(create=True, ifname=f"h{i}", index=HOST + i, kind="veth", group=GROUP,
                               master=BR + i, up=True,
                               peer=VethPeer(f"n{i}", index=NODE + i, group=GROUP)),
                 wire.new_link(index=HOST + i, alias=f"vnet:b:h{i}"),
                 wire.new_link(index=NODE + i, alias=f"vnet:b:n{i}", up=True)]
    for i in range(n - 1):
        msgs += [wire.new_link(create=True, ifname=f"l{i}", index=LEFT + i, kind="veth", group=GROUP,
                               master=BR + i, up=True,
                               peer=VethPeer(f"r{i}", index=RIGHT + i, group=GROUP)),
                 wire.new_link(index=LEFT + i, alias=f"vnet:b:l{i}"),
                 wire.new_link(index=RIGHT + i, alias=f"vnet:b:r{i}", master=BR + i + 1, up=True)]
    return msgs


def ip_batch_lines(n: int) -> list[str]:
    lines = []
    for i in range(n):
        lines += [f"link add br{i} index {BR + i} group {GROUP} up type bridge",
                  f"link set br{i} alias vnet:b:br{i}"]
    for i in range(n):
        lines += [f"link add h{i} index {HOST + i} group {GROUP} master br{i} up type veth "
                  f"peer name n{i} index {NODE + i} group {GROUP}",
                  f"link set h{i} alias vnet:b:h{i}", f"link set n{i} alias vnet:b:n{i} up"]
    for i in range(n - 1):
        lines += [f"link add l{i} index {LEFT + i} group {GROUP} master br{i} up type veth "
                  f"peer name r{i} index {RIGHT + i} group {GROUP}",
                  f"link set l{i} alias vnet:b:l{i}", f"link set r{i} alias vnet:b:r{i} master br{i + 1} up"]
    return lines


def run_vnet(ns: str, n: int) -> dict[str, float]:
    with entered(ns):
        sock = NetlinkSocket()
    with sock:
        t0 = time.perf_counter()
        msgs = vnet_messages(n)
        t1 = time.perf_counter()
        acks = sock.transact(msgs)
        t2 = time.perf_counter()
    failed = [(i, a) for i, a in enumerate(acks) if a.errno]
    if failed:
        raise SystemExit(f"vnet batch: {len(failed)} failures, first {failed[0]}")
    return {"total": t2 - t0, "encode": t1 - t0, "kernel+acks": t2 - t1, "messages": len(msgs)}


def run_pyroute2(ns: str, n: int) -> dict[str, float]:
    with entered(ns):
        ipr = IPRoute()
    try:
        t0 = time.perf_counter()
        for i in range(n):
            ipr.link("add", ifname=f"br{i}", index=BR + i, kind="bridge", group=GROUP, state="up")
            ipr.link("set", index=BR + i, ifalias=f"vnet:b:br{i}")
        for i in range(n):
            ipr.link("add", ifname=f"h{i}", index=HOST + i, kind="veth",
                     peer={"ifname": f"n{i}", "group": GROUP}, group=GROUP, master=BR + i, state="up")
            ipr.link("set", index=HOST + i, ifalias=f"vnet:b:h{i}")
            ipr.link("set", ifname=f"n{i}", ifalias=f"vnet:b:n{i}", state="up")
        for i in range(n - 1):
            ipr.link("add", ifname=f"l{i}", index=LEFT + i, kind="veth",
                     peer={"ifname": f"r{i}", "group": GROUP}, group=GROUP, master=BR + i, state="up")
            ipr.link("set", index=LEFT + i, ifalias=f"vnet:b:l{i}")
            ipr.link("set", ifname=f"r{i}", ifalias=f"vnet:b:r{i}", master=BR + i + 1, state="up")
        return {"total": time.perf_counter() - t0}
    finally:
        ipr.close()


def run_ip_batch(ns: str, n: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".ip", delete=False) as handle:
        handle.write("\n".join(ip_batch_lines(n)) + "\n")
    try:
        t0 = time.perf_counter()
        subprocess.run(["ip", "-n", ns, "-batch", handle.name], check=True)
        return {"total": time.perf_counter() - t0}
    finally:
        os.unlink(handle.name)


def snapshot(ns: str) -> tuple[set[tuple[object, ...]], float, float]:
    """The lab as (name, kind, master name, up, alias, group) rows; vnet and pyroute2 dump times."""
    with entered(ns):
        sock, ipr = NetlinkSocket(), IPRoute()
    vnet_times, pyroute2_times = [], []
    with sock:
        try:
            for _ in range(2):  # best of two: kworkers are still busy with the new devices
                t0 = time.perf_counter()
                links = sock.links()
                t1 = time.perf_counter()
                ipr.get_links()
                vnet_times.append(t1 - t0)
                pyroute2_times.append(time.perf_counter() - t1)
        finally:
            ipr.close()
    names = {link.index: link.name for link in links}
    rows: set[tuple[object, ...]] = {
        (link.name, link.kind, names.get(link.master or 0), link.up, link.alias, link.group)
        for link in links if link.group == GROUP}
    return rows, min(vnet_times), min(pyroute2_times)


def settle(ns: str, limit: float = 60.0) -> float:
    """Wait until 50 trivial requests take < 1 ms ten times in a row (0.5 s); return the wait."""
    with entered(ns):
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


Methods = dict[str, Callable[[str, int], dict[str, float]]]


def measure(methods: Methods, probe: str, repeat: int, n: int) -> tuple[
        dict[str, list[dict[str, float]]], list[tuple[float, float]], int, float]:
    """Each method `repeat` times, interleaved, each in a fresh namespace deleted right after,
    waiting for a quiet kernel before each run (background IPv6 autoconfiguration of the last
    lab's devices and the namespace cleanup both take the RTNL lock)."""
    results: dict[str, list[dict[str, float]]] = {name: [] for name in methods}
    reference: set[tuple[object, ...]] | None = None
    dumps: list[tuple[float, float]] = []
    waited = 0.0
    for _ in range(repeat):
        for name, run in methods.items():
            waited += settle(probe)
            ns = f"vnetbench-{secrets.token_hex(3)}"
            subprocess.run(["ip", "netns", "add", ns], check=True)
            try:
                results[name].append(run(ns, n))
                rows, t_vnet, t_pyroute2 = snapshot(ns)
            finally:
                subprocess.run(["ip", "netns", "del", ns], check=False)
            reference = reference or rows
            if rows != reference:
                raise SystemExit(f"{name} built a different lab: {sorted(rows ^ reference)[:5]}")
            dumps.append((t_vnet, t_pyroute2))
    return results, dumps, len(reference or ()), waited


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--bridges", type=int, default=100)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 77
    methods: Methods = {
        "ip -batch": run_ip_batch, "vnet netlink batch": run_vnet, "pyroute2 IPRoute.link": run_pyroute2}
    probe = f"vnetbench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", probe], check=True)
    try:
        load = os.getloadavg()[0]
        results, dumps, devices, waited = measure(methods, probe, args.repeat, args.bridges)
        print(f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}; waited {waited:.1f} s in all "
              "for a quiet rtnetlink between runs")
        report(results, dumps, args.bridges, devices)
        settle(probe)
    finally:
        subprocess.run(["ip", "netns", "del", probe], check=False)
    return 0


def report(results: dict[str, list[dict[str, float]]], dumps: list[tuple[float, float]], n: int,
           devices: int) -> None:
    floor = statistics.median(r["total"] for r in results["ip -batch"])
    count = len(dumps) // len(results)
    print(f"{n} bridges + {2 * n - 1} veth pairs = {devices} devices; median (min) of {count} runs")
    for name, runs in results.items():
        total = statistics.median(r["total"] for r in runs)
        best = min(r["total"] for r in runs)
        extra = ""
        if "encode" in runs[0]:
            extra = (f"  (encode {statistics.median(r['encode'] for r in runs) * 1e3:.1f} ms, "
                     f"kernel+acks {statistics.median(r['kernel+acks'] for r in runs) * 1e3:.1f} ms, "
                     f"{int(runs[0]['messages'])} messages)")
        ratio = total / floor
        print(f"  {name:<22} {total * 1e3:7.1f} ms ({best * 1e3:6.1f})  {ratio:5.2f}x ip -batch{extra}")
    t_vnet = statistics.median(d[0] for d in dumps)
    t_pyroute2 = statistics.median(d[1] for d in dumps)
    print(f"  link dump of {devices + 1} devices: vnet {t_vnet * 1e3:.1f} ms, pyroute2 get_links "
          f"{t_pyroute2 * 1e3:.1f} ms ({t_pyroute2 / t_vnet:.0f}x)")


if __name__ == "__main__":
    sys.exit(main())

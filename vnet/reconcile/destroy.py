"""destroy: remove everything a lab owns, fast, with or without its topology file.

Namespaces go first: unmounting is instant and the kernel frees each namespace, its devices
and the host ends of their veth pairs asynchronously. Then, when the lab has more than
SYNC_BRIDGES Linux bridges, they are retired: deleting a bridge costs the kernel one RCU grace
period (rcu_barrier() in br_multicast_dev_del, ~16-20 ms each here, in any batch), so each is
set down and renamed out of the lab in one batch (a `vd…` name, the alias
`vnet-reap:<lab>:<old name>`, the default device group: ~1 ms each) and a background reaper
process deletes them (vnet/drivers/netlink/reaper.py). The remaining host devices (bridges of
a small lab, TAPs, veth host ends) go in one RTM_DELLINK by device group when every device of
that group is the lab's, otherwise in one batch of per-device deletes. Finally vnet waits
(bounded) until nothing carries the lab's mark. When destroy returns, the lab's names, marks
and group are free (an apply can follow at once); retired bridges are down, portless and
gone a moment later. A retired bridge whose reaper died is removed by the next destroy of
its lab (and `labs_on_host` lists such a lab, so `vnet destroy --all` finds it).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vnet.drivers import netns
from vnet.drivers.host import KernelHost, lab_group
from vnet.drivers.netlink import reaper, wire
from vnet.drivers.netlink.parse import LinkMsg
from vnet.errors import VnetError
from vnet.reconcile.lock import lab_dir
from vnet.reconcile.observe import lab_prefix, observe
from vnet.resources import HOST, ObservedState

GONE_ERRNOS = frozenset({19, 2})  # ENODEV, ENOENT
REAP_MARK = "vnet-reap:"  # ifalias of a retired bridge: vnet-reap:<lab>:<old name>
REAPER = Path(reaper.__file__)
# Up to this many bridges are deleted before destroy returns (~20 ms each): a small lab is gone
# entirely when destroy returns, and only larger ones leave the kernel work to the reaper.
SYNC_BRIDGES = 8


@dataclass(frozen=True)
class DestroyReport:
    lab: str
    namespaces: int
    devices: int
    seconds: float
    ovs_bridges: int = 0
    reaping: int = 0  # retired bridges handed to the background reaper (included in devices)


def _host_devices(host: KernelHost, lab: str) -> tuple[list[str], bool]:
    """Names of the lab's host devices, and whether its group holds nothing else."""
    prefix, group = lab_prefix(lab), lab_group(lab)
    owned, exclusive = [], True
    for name, link in host.links(HOST).items():
        mine = bool(link.alias and link.alias.startswith(prefix))
        if mine:
            owned.append(name)
        elif link.group == group:
            exclusive = False
    return owned, exclusive


def _delete_devices(host: KernelHost, lab: str) -> int:
    host.invalidate(HOST)
    names, exclusive = _host_devices(host, lab)
    if not names:
        return 0
    sock = host.socket(HOST)
    if exclusive:
        acks = sock.transact([wire.del_link_group(lab_group(lab))])
    else:
        acks = sock.transact([wire.del_link(ifname=name) for name in names])
    failed = [a for a in acks if a.errno and a.errno not in GONE_ERRNOS]
    if failed:
        raise VnetError(f"could not delete the devices of lab {lab}: {failed[0].error()}")
    return len(names)


def _wait_until_gone(host: KernelHost, lab: str, timeout: float = 10.0) -> ObservedState:
    deadline = time.monotonic() + timeout
    while True:
        left = observe(lab, None, host)
        if not left.resources or time.monotonic() > deadline:
            return left
        _delete_devices(host, lab)
        time.sleep(0.02)


def _lab_namespaces(host: KernelHost, lab: str) -> list[str]:
    """The lab's namespaces, by observe's rule (a `vnet-<lab>-` name and the mark on its
    loopback), reading only each one's links: a full observe also dumps addresses and routes
    and reads a sysctl per namespace (~0.3-0.5 s of destroy at 100 namespaces)."""
    host.invalidate()
    prefix = lab_prefix(lab)
    found = []
    for name in netns.names():
        if name.startswith(f"vnet-{lab}-") and netns.exists(name):
            lo = host.links(name).get("lo")
            if lo is not None and lo.alias and lo.alias.startswith(prefix):
                found.append(name)
    return found


def _dying_name(lab: str, link: LinkMsg) -> str:
    """A retired bridge's name: `vd` + 12 hex digits, unique per lab, bridge and ifindex."""
    digest = hashlib.blake2b(f"{lab}\0{link.name}\0{link.index}".encode(), digest_size=6).hexdigest()
    return "vd" + digest


def _retire_bridges(host: KernelHost, lab: str) -> list[str]:
    """Take the lab's bridges out of the lab (down, renamed, re-marked, default group) in one
    batch, when it has more than SYNC_BRIDGES; returns the names to reap: these and earlier
    retired ones of the lab still present. A bridge not retired (too few, or the kernel refused)
    keeps its name and mark: it is deleted with the rest."""
    host.invalidate(HOST)
    prefix, leftover = lab_prefix(lab), f"{REAP_MARK}{lab}:"
    bridges = [link for link in host.links(HOST).values()
               if link.kind == "bridge" and link.alias and link.alias.startswith(prefix)]
    names = [link.name for link in host.links(HOST).values() if (link.alias or "").startswith(leftover)]
    if len(bridges) <= SYNC_BRIDGES:
        bridges = []  # deleted with the lab's other devices, before destroy returns
    messages = []
    for link in bridges:
        messages += [wire.new_link(index=link.index, up=False),
                     wire.new_link(index=link.index, ifname=_dying_name(lab, link), group=0,
                                   alias=f"{leftover}{link.name}")]
    acks = host.socket(HOST).transact(messages) if messages else []
    names += [_dying_name(lab, link) for i, link in enumerate(bridges) if acks[2 * i + 1].ok]
    host.invalidate(HOST)
    return names


def _start_reaper(lab: str, names: list[str]) -> None:
    """Delete `names` in a background process (its own session: it outlives a CLI command).

    A thread waits for it, so that a long-lived caller keeps no zombie; when the caller exits
    first, init adopts the reaper. Without a process (spawn refused) they are deleted here."""
    if not names:
        return
    # Standard streams on /dev/null: a caller reading ours (`subprocess.run(["vnet", "destroy"…],
    # capture_output=True)`) would otherwise wait for the reaper to close them.
    quiet = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:
        pid = os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", str(REAPER), lab, *names],
                             os.environ, setsid=True, file_actions=quiet)
    except OSError:
        reaper.reap(names)
        return
    threading.Thread(target=os.waitpid, args=(pid, 0), name=f"vnet-reaper-{pid}", daemon=True).start()


def reapers_running() -> set[str]:
    """Labs whose bridges a reaper process is deleting right now (from /proc/*/cmdline)."""
    labs: set[str] = set()
    needle = str(REAPER).encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if needle in argv and argv.index(needle) + 1 < len(argv):
            labs.add(argv[argv.index(needle) + 1].decode(errors="replace"))
    return labs


def _kill_points() -> Callable[[], None]:
    """Test hook: VNET_TEST_FAULT=kill-destroy:K sends SIGKILL to this process at destroy's K-th
    step boundary (0: the lab's VMs and OVS rows are gone, its kernel objects untouched yet)."""
    mode, _, position = os.environ.get("VNET_TEST_FAULT", "").partition(":")
    at = int(position) if mode == "kill-destroy" and position.isdigit() else -1
    passed = itertools.count()

    def point() -> None:
        if next(passed) == at:
            os.kill(os.getpid(), signal.SIGKILL)
    return point


def destroy_lab(lab: str, host: KernelHost) -> DestroyReport:
    """Remove every object carrying the lab's mark; raises VnetError if something stays."""
    started = time.monotonic()
    boundary = _kill_points()
    boundary()
    namespaces = _lab_namespaces(host, lab)
    for name in namespaces:
        host.forget(name)
    netns.delete(namespaces)
    boundary()
    retired = _retire_bridges(host, lab)
    boundary()
    devices = _delete_devices(host, lab)
    boundary()
    left = _wait_until_gone(host, lab)
    if left.resources:
        _start_reaper(lab, retired)
        names = ", ".join(sorted(r.describe() for r in left.resources.values())[:5])
        raise VnetError(f"lab {lab}: still present after destroy: {names}",
                        "run destroy again; if it persists, report it")
    _start_reaper(lab, retired)
    boundary()
    shutil.rmtree(lab_dir(lab), ignore_errors=True)
    return DestroyReport(lab, len(namespaces), devices + len(retired), time.monotonic() - started,
                         reaping=len(retired))


def labs_on_host(host: KernelHost) -> list[str]:
    """Every lab that has at least one marked object on this host (or retired bridges that no
    reaper is deleting)."""
    found: set[str] = set()
    retired: set[str] = set()
    for link in host.links(HOST).values():
        if link.alias and link.alias.startswith("vnet:"):
            found.add(link.alias.split(":")[1])
        elif link.alias and link.alias.startswith(REAP_MARK):
            retired.add(link.alias.split(":")[1])
    if retired:  # retired bridges whose reaper died: destroy removes them
        found |= retired - reapers_running()
    for name in netns.names():
        if not name.startswith("vnet-") or not netns.exists(name):
            continue
        lo = host.links(name).get("lo")
        if lo is not None and lo.alias and lo.alias.startswith("vnet:"):
            found.add(lo.alias.split(":")[1])
    return sorted(found)

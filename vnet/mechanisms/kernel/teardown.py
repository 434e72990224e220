"""How the kernel driver deletes many devices at once (destroy), fast.

- Namespaces are unmounted: the kernel frees them, their devices and the host ends of their veth
  pairs asynchronously (destroy plans no separate deletes for what a namespace takes along).
- Deleting a Linux bridge costs the kernel one RCU grace period (rcu_barrier() in
  br_multicast_dev_del, ~16-20 ms here, in any batch). A wave that deletes more than
  SYNC_BRIDGES bridges *retires* them: each is set down and renamed out of the lab in one batch
  (a `vd…` name, the alias `vnet-reap:<lab>:<old name>`, the default device group: ~1 ms each),
  and a detached reaper process (reaper.py, standard library and vnet.netlink only) deletes
  them; in a destroy it starts when the destroy is done (the host connection closes), so that
  it does not hold the RTNL lock while destroy checks that nothing of the lab is left. A
  retired bridge whose reaper died is observed again (a stray of the lab) and deleted by the
  next destroy.
- The host devices of a wave go in one RTM_DELLINK by device group when the group holds only
  them (or, in a destroy, only devices of the lab: the host ends of veths whose namespace is
  going, which the kernel would delete a moment later), otherwise in one batch of per-device
  deletes.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import threading
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from vnet.host import netns
from vnet.marks import lab_prefix
from vnet.mechanisms.kernel import reaper
from vnet.mechanisms.kernel.host import KernelHost
from vnet.netlink import wire
from vnet.netlink.parse import LinkMsg
from vnet.resources import HOST

if TYPE_CHECKING:
    from vnet.mechanisms.kernel.driver import Work

REAP_MARK = "vnet-reap:"  # ifalias of a retired bridge: vnet-reap:<lab>:<old name>
REAPER = Path(reaper.__file__)
# Up to this many bridges are deleted in the wave itself (~20 ms each): a small lab is gone
# when destroy returns; only larger ones leave the kernel's work to the reaper.
SYNC_BRIDGES = 8
GONE = frozenset({19, 2})  # ENODEV, ENOENT


def dying_name(lab: str, link: LinkMsg) -> str:
    """A retired bridge's name: `vd` + 12 hex digits, unique per lab, bridge and ifindex."""
    digest = hashlib.blake2b(f"{lab}\0{link.name}\0{link.index}".encode(), digest_size=6).hexdigest()
    return "vd" + digest


def batch_deletes(lab: str, work: Work) -> None:
    """Turn the wave's bridge and host-device deletes into the kernel's cheap batches."""
    bridges, work.bridges = work.bridges, []
    host = work.host
    links = host.links(HOST)
    if len(bridges) > SYNC_BRIDGES:
        retired = {name for _, name in bridges}
        work.do(0, bridges[0][0], functools.partial(_retire, lab, host, sorted(retired), work.teardown))
    else:
        retired = set()
        for i, name in bridges:
            work.host_deletes.append((i, name))
    deletes, work.host_deletes = work.host_deletes, []
    names = {name for _, name in deletes} - retired
    group = {name for name, link in links.items() if link.group == work.group and name not in retired}
    lost = orphans(lab, links.values(), host) if work.teardown else frozenset()
    only_these = group == names or (work.teardown and names <= group
                                    and all(is_lab_device(lab, links[name], lost) for name in group))
    if len(names) > 1 and only_these:
        work.send(0, HOST, deletes[0][0], lambda: wire.del_link_group(work.group), GONE)
        return
    for i, name in deletes:
        if name not in retired:
            work.send(0, HOST, i, functools.partial(wire.del_link, ifname=name), GONE)


def _retire(lab: str, host: KernelHost, names: list[str], teardown: bool) -> None:
    """Take the bridges out of the lab (down, renamed, re-marked, default group) in one batch,
    then hand them to a reaper. A bridge the kernel would not rename is deleted here."""
    host.invalidate(HOST)
    links = [host.links(HOST)[name] for name in names if name in host.links(HOST)]
    messages = []
    for link in links:
        messages += [wire.new_link(index=link.index, up=False),
                     wire.new_link(index=link.index, ifname=dying_name(lab, link), group=0,
                                   alias=f"{REAP_MARK}{lab}:{link.name}")]
    acks = host.socket(HOST).transact(messages) if messages else []
    renamed = [dying_name(lab, link) for k, link in enumerate(links) if acks[2 * k + 1].ok]
    kept = [link.name for k, link in enumerate(links) if not acks[2 * k + 1].ok]
    if kept:
        host.socket(HOST).transact([wire.del_link(ifname=name) for name in kept])
    host.invalidate(HOST)
    if not teardown:
        start_reaper(lab, renamed)
        return
    host.retired.setdefault(lab, set()).update(renamed)
    host.on_close.append(lambda: start_reaper(lab, renamed))


def start_reaper(lab: str, names: list[str]) -> None:
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


def orphans(lab: str, links: Iterable[LinkMsg], host: KernelHost) -> frozenset[str]:
    """Bridges the lab retired whose reaper is gone (it died): the lab's to delete again (not
    those this process retired: their reaper starts when the host connection closes)."""
    mark = f"{REAP_MARK}{lab}:"
    retired = {link.name for link in links if link.alias and link.alias.startswith(mark)}
    retired -= host.retired.get(lab, set())
    return frozenset(retired) if retired and lab not in reapers_running() else frozenset()


def labs_on_host(host: KernelHost) -> set[str]:
    """Every lab with a marked device or namespace here (or retired bridges no reaper deletes)."""
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
    return found


def is_lab_device(lab: str, link: LinkMsg, orphaned: Collection[str]) -> bool:
    """The lab's mark, or one of its orphaned retired bridges (`orphans`)."""
    return bool(link.alias and link.alias.startswith(lab_prefix(lab))) or link.name in orphaned

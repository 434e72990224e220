"""destroy: remove everything a lab owns, fast, with or without its topology file.

Namespaces go first: unmounting is instant and the kernel frees each namespace, its devices
and the host ends of their veth pairs asynchronously. The lab's host devices (bridges, TAPs,
veth host ends) then go in one RTM_DELLINK by device group, one kernel synchronisation for
all of them, when every device of that group is the lab's; otherwise one batch of per-device
deletes. Finally vnet waits (bounded) until nothing of the lab is left.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from vnet.drivers import netns
from vnet.drivers.host import KernelHost, lab_group
from vnet.drivers.netlink import wire
from vnet.errors import VnetError
from vnet.reconcile.lock import lab_dir
from vnet.reconcile.observe import lab_prefix, observe
from vnet.resources import HOST, ObservedState

GONE_ERRNOS = frozenset({19, 2})  # ENODEV, ENOENT


@dataclass(frozen=True)
class DestroyReport:
    lab: str
    namespaces: int
    devices: int
    seconds: float
    ovs_bridges: int = 0


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


def destroy_lab(lab: str, host: KernelHost) -> DestroyReport:
    """Remove every object carrying the lab's mark; raises VnetError if something stays."""
    started = time.monotonic()
    namespaces = _lab_namespaces(host, lab)
    for name in namespaces:
        host.forget(name)
    netns.delete(namespaces)
    devices = _delete_devices(host, lab)
    left = _wait_until_gone(host, lab)
    if left.resources:
        names = ", ".join(sorted(r.describe() for r in left.resources.values())[:5])
        raise VnetError(f"lab {lab}: still present after destroy: {names}",
                        "run destroy again; if it persists, report it")
    shutil.rmtree(lab_dir(lab), ignore_errors=True)
    return DestroyReport(lab, len(namespaces), devices, time.monotonic() - started)


def labs_on_host(host: KernelHost) -> list[str]:
    """Every lab that has at least one marked object on this host."""
    found: set[str] = set()
    for link in host.links(HOST).values():
        if link.alias and link.alias.startswith("vnet:"):
            found.add(link.alias.split(":")[1])
    for name in netns.names():
        if not name.startswith("vnet-") or not netns.exists(name):
            continue
        lo = host.links(name).get("lo")
        if lo is not None and lo.alias and lo.alias.startswith("vnet:"):
            found.add(lo.alias.split(":")[1])
    return sorted(found)

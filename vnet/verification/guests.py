"""Probes from inside VMs: busybox/iputils `ping` run through the guest's agent.

One agent command per VM sends every probe of that VM at once (background jobs in the
guest's shell), and all VMs are probed in parallel; each probe answers `ok ADDRESS time=…`
or `no ADDRESS`. The tiny image runs vnet's own agent; disk images qemu-guest-agent.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Protocol, Self

import netaddr

from vnet.errors import VnetError
from vnet.topology.lab import Lab
from vnet.topology.model import VmNode
from vnet.verification.icmp import Echo
from vnet.vm import qemu
from vnet.vm.agent import GuestAgent, GuestResult
from vnet.vm.qga import QgaAgent

NodePing = tuple[str, str]  # (node, address)
_ANSWER = re.compile(r"^(ok|no) (\S+)(?: time=([0-9.]+))?", re.MULTILINE)


class GuestChannel(Protocol):
    """What vnet needs of a guest agent: run a command, get its status and output."""

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None: ...

    def wait_ready(self, timeout: float) -> None: ...

    def run(self, argv: Sequence[str], timeout: float = 30.0) -> GuestResult: ...


def guest_agent(lab: Lab, node: str) -> GuestChannel:
    """The agent of a running VM: vnet's own in the tiny image, else qemu-guest-agent."""
    spec = lab.topology.nodes[node]
    paths = qemu.vm_paths(lab.name, node)
    if isinstance(spec, VmNode) and spec.image == "tiny":
        return GuestAgent(paths.agent)
    return QgaAgent(paths.qga)


def ping_script(addresses: Sequence[str], timeout: float) -> str:
    deadline = max(1, round(timeout))
    jobs = []
    for address in addresses:
        ping = "ping6" if netaddr.IPAddress(address).version == 6 else "ping"
        a = shlex.quote(address)
        jobs.append(f"( if o=$({ping} -c 1 -w {deadline} {a} 2>&1); then "
                    f"echo \"ok {a} $(echo \"$o\" | grep -o 'time=[0-9.]*' | head -n 1)\"; "
                    f"else echo \"no {a}\"; fi ) &")
    return "\n".join([*jobs, "wait"])


def _probe_vm(lab: Lab, node: str, addresses: list[str], timeout: float) -> dict[NodePing, Echo]:
    echoes = {(node, a): Echo(False, None) for a in addresses}
    try:
        with guest_agent(lab, node) as agent:
            agent.wait_ready(qemu.BOOT_TIMEOUT)  # at once for a booted guest; a disk image may still boot
            result = agent.run(["sh", "-c", ping_script(addresses, timeout)], timeout + 30)
    except VnetError:
        return echoes  # an unreachable agent answers nothing; drift checks report the VM
    for verdict, address, rtt in _ANSWER.findall(result.stdout):
        if (node, address) in echoes and verdict == "ok":
            echoes[(node, address)] = Echo(True, float(rtt) if rtt else None)
    return echoes


def ping_from_vms(lab: Lab, pings: Sequence[NodePing], timeout: float) -> dict[NodePing, Echo]:
    by_node: dict[str, list[str]] = {}
    for node, address in pings:
        by_node.setdefault(node, []).append(address)
    echoes: dict[NodePing, Echo] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(by_node))) as pool:
        for found in pool.map(lambda item: _probe_vm(lab, item[0], item[1], timeout), by_node.items()):
            echoes.update(found)
    return echoes

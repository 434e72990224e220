"""Probes from inside VMs and listeners on them, through the guest's agent.

One agent command per VM runs all of its probes at once (background jobs of the guest's shell),
and all VMs are probed in parallel. Each job prints `R <k> <exit status> <base64 output>`; the
host reads the tool's own output. Two tool sets:

- the tiny image (vnet's agent, BusyBox, and OpenBSD netcat when the host had it to copy in):
  ICMP `ping -c 1 -W T -w T` (T: the timeout rounded up to whole seconds, as BusyBox takes it);
  MTU rows over IPv4 `traceroute -F` (a UDP probe of the whole size with don't-fragment set:
  the target answers port unreachable, a router too small answers `!F-<mtu>`); over IPv6
  `ping6 -s` (BusyBox cannot forbid fragmenting: a probe larger than the guest's own interface
  MTU is failed by vnet before it is sent, and one larger than a path MTU the guest learnt
  from a router within the last 10 minutes would pass fragmented); TCP `nc -w T`; UDP
  `nc.openbsd -u` (an exit status 1 after "Connection refused" is a refusal). Listeners:
  BusyBox `nc -l…l -p PORT -e /bin/true` for TCP (every `-l` after the first raises the
  listen backlog by one, and a backlog of one or two drops SYNs when many sources probe one
  guest at once), `nc.openbsd -u -l -k` for UDP, appending the tokens to a file.
- other images (qemu-guest-agent, python3 as cloud-init needs it): vnet's own probe engine
  (vnet/verification/engine.py, standard library only) runs as a python3 script.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import re
import secrets
import shlex
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from types import TracebackType
from typing import Protocol, Self

import netaddr

from vnet.errors import VnetError
from vnet.mechanisms.qemu import process as qemu
from vnet.topology.lab import Lab
from vnet.topology.model import VmNode
from vnet.topology.reach import mtu_of
from vnet.topology.routing import egress
from vnet.verification.engine import ANSWERED, REFUSED, SILENT, Answer
from vnet.verification.icmp import HEADERS
from vnet.verification.sends import Listening, Receipts, Send
from vnet.vm.agent import GuestAgent, GuestResult
from vnet.vm.qga import QgaAgent

_RESULT = re.compile(r"^R (\d+) (\d+) (\S*)$", re.MULTILINE)
_TIME = re.compile(r"time=([0-9.]+)")
_TRACE_HOP = re.compile(r"^\s*\d+\s+(\S+)\s+([0-9.]+) ms(?:\s+(!\S+))?", re.MULTILINE)
RUN_DIR = "/run/vnet"  # in the guest
TCP_BACKLOG = 128  # `-l` flags given to BusyBox nc (see the module docstring)
AGENT_SLACK = 30.0  # s an agent command may take beyond the probes' own timeout


class GuestChannel(Protocol):
    """What vnet needs of a guest agent: run a command, get its status and output."""

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None: ...

    def wait_ready(self, timeout: float) -> None: ...

    def run(self, argv: Sequence[str], timeout: float = 30.0, stdin: bytes | None = None,
            grace: float = 0.0) -> GuestResult: ...


def is_tiny(lab: Lab, node: str) -> bool:
    spec = lab.topology.nodes[node]
    return isinstance(spec, VmNode) and spec.image == "tiny"


def guest_agent(lab: Lab, node: str) -> GuestChannel:
    """The agent of a running VM: vnet's own in the tiny image, else qemu-guest-agent."""
    paths = qemu.vm_paths(lab.name, node)
    return GuestAgent(paths.agent) if is_tiny(lab, node) else QgaAgent(paths.qga)


def vm_running(lab: Lab, node: str) -> bool:
    """Its QEMU runs and its agent's socket exists (else probing it would only wait)."""
    paths = qemu.vm_paths(lab.name, node)
    agent = paths.agent if is_tiny(lab, node) else paths.qga
    return agent.exists() and any(vm.node == node for vm in qemu.running_vms(lab.name))


def _script(lab: Lab, node: str, script: str, timeout: float) -> str:
    """Run a shell script in the guest; its stdout ("" when the agent cannot be reached)."""
    try:
        with guest_agent(lab, node) as agent:
            agent.wait_ready(qemu.BOOT_TIMEOUT)  # at once for a booted guest; a disk image may still boot
            return agent.run(["sh", "-c", script], timeout + AGENT_SLACK).stdout
    except VnetError:
        return ""  # an unreachable agent answers nothing; drift checks report the VM


# --- the tiny image's tools ----------------------------------------------------------------------


def _seconds(timeout: float) -> int:
    return max(1, math.ceil(timeout))


def _tiny_job(k: int, send: Send, timeout: float) -> str:
    wait = _seconds(timeout)
    address = shlex.quote(send.address)
    v6 = netaddr.IPAddress(send.address).version == 6
    if send.proto == "tcp":
        command = f"nc -w {wait} {address} {send.port} </dev/null"
    elif send.proto == "udp":
        # The token goes with nc.openbsd (it ignores refusals once it sends data); a refusal is
        # BusyBox traceroute's probe to the same port answered by the target itself.
        line = f"printf '%s\\n' {shlex.quote(send.token)}"
        pause = max(0.1, round(timeout / 3, 2))
        command = (f"({line}; sleep {pause}; {line}; sleep {pause}; {line}) | nc.openbsd -n -u "
                   f"-q {wait} -w {wait} {address} {send.port}; "
                   f"traceroute -n -q 1 -f 64 -m 64 -w {wait} -p {send.port - 1} {address}")
    else:
        size = f" -s {max(0, send.size - HEADERS[6 if v6 else 4])}" if send.size else ""
        command = f"{'ping6' if v6 else 'ping'} -c 1 -W {wait} -w {wait}{size} {address}"
    return f'( o=$( {command} 2>&1); echo "R {k} $? $(printf %s "$o" | base64 -w 0)" ) &'


def tiny_probe_script(sends: Sequence[Send], timeout: float) -> str:
    # A path MTU the guest learnt earlier would let BusyBox ping fragment an MTU probe: forget them.
    flush = ["echo 1 > /proc/sys/net/ipv4/route/flush 2>/dev/null"] if any(s.size for s in sends) else []
    return "\n".join([*flush, *(_tiny_job(k, s, timeout) for k, s in enumerate(sends)), "wait"])


def _tiny_answer(send: Send, status: int, output: str) -> Answer:
    if send.proto == "tcp":
        return Answer(ANSWERED) if status == 0 else Answer(REFUSED if "refused" in output else SILENT)
    if send.proto == "udp":
        if "not found" in output:
            return Answer(SILENT, None, "the guest has no nc.openbsd to send UDP (rebuild the tiny image "
                                        "on a host with netcat-openbsd installed, then apply)")
        hop = _TRACE_HOP.search(output)
        return Answer(REFUSED) if hop is not None and hop.group(1) == send.address else Answer(SILENT)
    found = _TIME.search(output)
    return Answer(ANSWERED, float(found.group(1)) if found else None) if status == 0 else Answer(SILENT)


def tiny_listen_script(run: str, listens: Sequence[Listening]) -> str:
    """Start the listeners detached from the agent's command (setsid); wait until they listen."""
    where = f"{RUN_DIR}/verify-{run}"
    lines = [f"mkdir -p {where}"]
    checks = []
    for listen in listens:
        if listen.proto == "tcp":
            lines.append(f"setsid nc -{'l' * TCP_BACKLOG} -p {listen.port} -e /bin/true </dev/null "
                         f">/dev/null 2>&1 & echo $! >> {where}/pids")
            checks.append(f"netstat -lnt | grep -q ':{listen.port} '")
        for version in listen.versions if listen.proto == "udp" else ():
            lines.append(f"setsid nc.openbsd -{version} -u -l -k {listen.port} </dev/null "
                         f">> {where}/udp.log 2>/dev/null & echo $! >> {where}/pids")
            checks.append(f"netstat -lnu | grep -q ':{listen.port} '")
    ready = " && ".join(checks) or "true"
    lines.append(f"n=0; until {ready} || [ $n -ge 30 ]; do n=$((n + 1)); sleep 0.1; done")
    return "\n".join(lines)


def receipts_script(run: str) -> str:
    return f"cat {RUN_DIR}/verify-{run}/udp.log 2>/dev/null"


def stop_script(run: str) -> str:
    where = f"{RUN_DIR}/verify-{run}"
    return f"kill $(cat {where}/pids 2>/dev/null) 2>/dev/null; rm -rf {where}"


# --- other images: vnet's engine as a python3 script ----------------------------------------------


def engine_program() -> str:
    """A python3 program holding vnet's probe engine and ICMP codec, for a guest without vnet."""
    sources = {name: resources.files("vnet.verification").joinpath(f"{name}.py").read_text()
               for name in ("icmp", "engine")}
    return "\n".join([
        "import sys, types",
        "for name in ('vnet', 'vnet.verification'):",
        "    sys.modules[name] = types.ModuleType(name)",
        f"SOURCES = {sources!r}",
        "for name in ('icmp', 'engine'):",
        "    module = types.ModuleType('vnet.verification.' + name)",
        "    sys.modules[module.__name__] = module",
        "    setattr(sys.modules['vnet.verification'], name, module)",
        "    exec(compile(SOURCES[name], module.__name__, 'exec'), module.__dict__)",
        "sys.modules['vnet.verification.engine'].main(sys.argv[1:])",
    ])


def python_probe_script(sends: Sequence[Send], timeout: float) -> str:
    requests = [{"address": s.address, "proto": s.proto, "port": s.port, "size": s.size, "token": s.token}
                for s in sends]
    return (f"python3 -c {shlex.quote(engine_program())} probe {timeout} "
            f"{shlex.quote(json.dumps(requests))}")


def _python_answers(sends: Sequence[Send], output: str) -> dict[Send, Answer]:
    try:
        found = json.loads(output)
        return {s: Answer(**item) for s, item in zip(sends, found, strict=True)}
    except (ValueError, TypeError):
        return {s: Answer(SILENT, None, "no answer from vnet's probe engine in the guest (needs python3)")
                for s in sends}


def python_listen_script(run: str, listens: Sequence[Listening]) -> str:
    where = f"{RUN_DIR}/verify-{run}"
    wanted = json.dumps([{"proto": x.proto, "port": x.port, "versions": list(x.versions)} for x in listens])
    return (f"mkdir -p {where}; setsid python3 -c {shlex.quote(engine_program())} listen {where}/udp.log "
            f"{shlex.quote(wanted)} </dev/null >/dev/null 2>&1 & echo $! >> {where}/pids; sleep 1")


# --- the runner ------------------------------------------------------------------------------


def _too_big(lab: Lab, send: Send) -> Answer | None:
    """An MTU probe larger than the interface it leaves by: the guest's tools would fragment it
    instead of failing, so vnet fails it (as the kernel refuses it from a namespace)."""
    interface = egress(lab, send.node, netaddr.IPAddress(send.address)) if send.size else None
    if interface is None or send.size <= mtu_of(interface):
        return None
    return Answer(SILENT, None, f"{send.size} bytes cannot leave {interface} (MTU {mtu_of(interface)}) "
                                "unfragmented")


def _probe_vm(lab: Lab, node: str, sends: list[Send], timeout: float) -> dict[Send, Answer]:
    early = {s: answer for s in sends if (answer := _too_big(lab, s)) is not None}
    return {**_probe_vm_tools(lab, node, [s for s in sends if s not in early], timeout), **early}


def _probe_vm_tools(lab: Lab, node: str, sends: list[Send], timeout: float) -> dict[Send, Answer]:
    if not sends:
        return {}
    if not is_tiny(lab, node):
        return _python_answers(sends, _script(lab, node, python_probe_script(sends, timeout), timeout))
    output = _script(lab, node, tiny_probe_script(sends, timeout), timeout)
    answers = {s: Answer(SILENT) for s in sends}
    for k, status, encoded in _RESULT.findall(output):
        try:
            text = base64.b64decode(encoded).decode(errors="replace")
        except binascii.Error:
            continue
        if int(k) < len(sends):
            answers[sends[int(k)]] = _tiny_answer(sends[int(k)], int(status), text)
    return answers


def send_from_vms(lab: Lab, sends: Sequence[Send], timeout: float) -> dict[Send, Answer]:
    by_node: dict[str, list[Send]] = {}
    for send in sends:
        by_node.setdefault(send.node, []).append(send)
    answers: dict[Send, Answer] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(by_node))) as pool:
        for found in pool.map(lambda item: _probe_vm(lab, item[0], item[1], timeout), by_node.items()):
            answers.update(found)
    return answers


@contextlib.contextmanager
def listen_on_vms(lab: Lab, listens: Sequence[Listening]) -> Iterator[Receipts]:
    """Listeners on the VMs for the duration of the run; `Receipts` reads what they got so far."""
    run = secrets.token_hex(4)
    by_node: dict[str, list[Listening]] = {}
    for listen in listens:
        by_node.setdefault(listen.node, []).append(listen)

    def on_each(script: Callable[[str], str]) -> list[str]:
        with ThreadPoolExecutor(max_workers=max(1, len(by_node))) as pool:
            return list(pool.map(lambda node: _script(lab, node, script(node), 10), by_node))

    def receipts() -> set[str]:
        texts = on_each(lambda _: receipts_script(run))
        return {line.strip() for text in texts for line in text.splitlines()}

    def start(node: str) -> str:
        return (tiny_listen_script if is_tiny(lab, node) else python_listen_script)(run, by_node[node])

    on_each(start)
    try:
        yield receipts
    finally:
        on_each(lambda _: stop_script(run))

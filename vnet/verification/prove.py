"""verify: the host matches the topology, then reachability and isolation hold from inside nodes.

State first: re-observe and diff; any pending change is drift and fails verification. Then
every expectation (the `expect` list or the derived matrix) becomes ICMP probes sent from
inside the source node, all in parallel; a probe that must reach passes when its target
answers, one that must not passes when no target address answers. Failures carry a hint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import netaddr

from vnet.compile import netns_name
from vnet.drivers.host import KernelHost
from vnet.reconcile.plan import Change
from vnet.topology.graph import LabGraph
from vnet.topology.lab import Lab
from vnet.topology.reach import Probe
from vnet.verification import neighbours
from vnet.verification.guests import ping_from_vms
from vnet.verification.icmp import Echo, Ping, ping_all


@dataclass(frozen=True)
class ProbeOutcome:
    probe: Probe
    reached: bool
    answered_by: str | None
    rtt_ms: float | None
    hint: str = ""
    skipped: str = ""  # why this probe could not run (e.g. the source kind cannot probe yet)

    @property
    def ok(self) -> bool:
        return not self.skipped and self.reached == self.probe.reach

    def to_json(self) -> dict[str, Any]:
        return {"from": self.probe.source, "to": self.probe.target,
                "addresses": [str(a.ip) for a in self.probe.addresses],
                "expected": "reach" if self.probe.reach else "isolated",
                "observed": "skipped" if self.skipped else ("reach" if self.reached else "isolated"),
                "ok": self.ok, "rtt_ms": self.rtt_ms, "reason": self.probe.reason,
                "hint": self.hint or self.skipped}


@dataclass(frozen=True)
class VerifyReport:
    lab: str
    drift: tuple[Change, ...]
    outcomes: tuple[ProbeOutcome, ...]

    @property
    def ok(self) -> bool:
        return not self.drift and all(o.ok for o in self.outcomes)

    def to_json(self) -> dict[str, Any]:
        return {"lab": self.lab, "ok": self.ok, "drift": [c.to_json() for c in self.drift],
                "probes": [o.to_json() for o in self.outcomes],
                "summary": {"probes": len(self.outcomes), "failed": sum(not o.ok for o in self.outcomes)}}


# How probes are sent from each node kind: a registry. A runner gets (node, address) pairs and
# answers an Echo for each.
NodePing = tuple[str, str]
KindPing = tuple[str, str, str]  # (kind, node, address)
ProbeRunner = Callable[[Lab, Sequence[NodePing], float], dict[NodePing, Echo]]


def _from_namespaces(lab: Lab, pings: Sequence[NodePing], timeout: float) -> dict[NodePing, Echo]:
    """All at once when the host's neighbour tables can take it, else in waves (neighbours.py)."""
    by_ping = {(node, address): Ping(netns_name(lab.name, node), address) for node, address in pings}
    echoes: dict[Ping, Echo] = {}
    batches = neighbours.waves(list(by_ping.values()), neighbours.free_entries())
    for number, batch in enumerate(batches, 1):
        echoes.update(ping_all(batch, timeout=timeout))
        if number < len(batches):
            neighbours.flush(netns_name(lab.name, node) for node, spec in lab.topology.nodes.items()
                             if spec.kind == "netns")
    return {key: echoes[ping] for key, ping in by_ping.items()}


PROBE_RUNNERS: dict[str, ProbeRunner] = {"netns": _from_namespaces, "vm": ping_from_vms}


def _send(lab: Lab, pings: Sequence[KindPing], timeout: float) -> dict[KindPing, Echo]:
    """Send (kind, node, address) probes, each kind through its runner, all kinds at once."""
    by_kind: dict[str, list[NodePing]] = {}
    for kind, node, address in pings:
        by_kind.setdefault(kind, []).append((node, address))
    with ThreadPoolExecutor(max_workers=max(1, len(by_kind))) as pool:
        answers = pool.map(lambda item: (item[0], PROBE_RUNNERS[item[0]](lab, item[1], timeout)),
                           by_kind.items())
        return {(kind, node, address): echo for kind, found in answers
                for (node, address), echo in found.items()}


def _hint(lab: Lab, probe: Probe, reached: bool) -> str:
    if reached:
        return "a reply came back: the isolation is broken (a path exists that should not)"
    mine = [a for i in lab.interfaces_of(probe.source) for a in i.addresses]
    target = probe.addresses[0] if probe.addresses else None
    if target is None:
        return "the target has no address in a family the source has"
    if any(target.ip in a.cidr for a in mine):
        return (f"no reply from {target.ip} on a connected subnet: ARP/ND unanswered or the L2 "
                "path is broken (check the segment with `vnet trace`)")
    routes = lab.topology.nodes[probe.source]
    if not getattr(routes, "routes", ()):
        return f"no route from {probe.source} to {target.ip}: add a route (or a default route)"
    return f"no reply from {target.ip}: a router on the way may lack a route back or forwarding"


RETRIES = 2  # extra rounds for probes that must reach (a datapath may still be settling)


def prove(graph: LabGraph, host: KernelHost, timeout: float = 1.5) -> list[ProbeOutcome]:
    lab = graph.lab
    probes = graph.expectations()
    pings: dict[tuple[int, str], KindPing] = {}
    skipped: dict[int, str] = {}
    for k, probe in enumerate(probes):
        kind = lab.topology.nodes[probe.source].kind
        if kind not in PROBE_RUNNERS:
            skipped[k] = f"vnet cannot run probes inside a {kind} node (no agent there)"
            continue
        for address in probe.addresses:
            pings[(k, str(address.ip))] = (kind, probe.source, str(address.ip))
    echoes = _send(lab, list(set(pings.values())), timeout)
    for _ in range(RETRIES):
        # Only unanswered probes that must reach are retried: an answer is never a fluke.
        again = {p for (k, _a), p in pings.items() if probes[k].reach and not echoes[p].reached}
        if not again:
            break
        echoes.update(_send(lab, list(again), timeout))
    return [_outcome(lab, k, probe, pings, echoes, skipped.get(k, "")) for k, probe in enumerate(probes)]


def _outcome(lab: Lab, k: int, probe: Probe, pings: dict[tuple[int, str], KindPing],
             echoes: dict[KindPing, Echo], skipped: str) -> ProbeOutcome:
    if skipped:
        return ProbeOutcome(probe, False, None, None, skipped=skipped)
    answers = [(address, echoes[pings[(k, str(address.ip))]]) for address in probe.addresses]
    hits = [(a, e) for a, e in answers if e.reached]
    # A reach probe holds when every address answers; an isolation probe fails on any answer.
    reached = bool(hits) and (len(hits) == len(answers) or not probe.reach)
    answered = ", ".join(str(a.ip) for a, _ in hits) or None
    rtt = max((e.rtt_ms or 0.0 for _, e in hits), default=None)
    outcome = ProbeOutcome(probe, reached, answered, rtt)
    if outcome.ok:
        return outcome
    silent = [a for a, e in answers if not e.reached]
    refused = next((e.send_error for _, e in answers if e.send_error), "")
    culprit = replace(probe, addresses=tuple(silent)) if probe.reach and silent else probe
    return ProbeOutcome(probe, reached, answered, rtt, refused or _hint(lab, culprit, reached))


def family_of(address: str) -> int:
    return int(netaddr.IPAddress(address).version)

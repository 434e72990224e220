"""verify: the host matches the topology, then every row of the expectations holds from inside.

State first: re-observe and diff; a pending change is drift and fails verification (the rows
are still probed, so that the report says what the drift breaks). Then every row (the
`expect` list or the derived matrix, vnet/topology/reach.py) becomes one probe sent from inside
its source node, all kinds and nodes at once: ICMP echo, a don't-fragment echo of the row's
size, a TCP connection or a UDP datagram to a listener vnet runs on the target for the run.
What each row observed:

    icmp, mtu   reach (the echo came back) | isolated (it did not)
    tcp         open (connected) | refused (a reset came back) | filtered (nothing came back)
    udp         open (vnet's listener got it) | refused (ICMP port unreachable) | filtered

A `reach` row holds on reach/open, an isolation row on isolated/filtered. An isolation row whose
source proved no positive control (a reach row of the same protocol and family) is
`unproven` and fails: it could hold only because the source reaches nothing at all. A row
whose source is not running is `skipped` and fails. Must-reach rows that failed are probed
again (RETRIES), since a datapath may still be settling; `--timeout` bounds each round.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from vnet.progress import ProbesAnswered, Progress, ignore
from vnet.resources import Change
from vnet.topology.graph import LabGraph
from vnet.topology.lab import Lab
from vnet.topology.reach import Probe
from vnet.verification import guests, namespaces
from vnet.verification.engine import ANSWERED, REFUSED, Answer
from vnet.verification.sends import Listening, ProbeKind, Receipts, Send

PROBE_KINDS: dict[str, ProbeKind] = {
    "netns": ProbeKind(namespaces.present, namespaces.send, namespaces.listen),
    "vm": ProbeKind(guests.vm_running, guests.send_from_vms, guests.listen_on_vms, per_node=True),
}
RETRIES = 2  # extra rounds for rows that must reach and did not
REACHED = frozenset({"reach", "open"})
HELD_APART = frozenset({"isolated", "filtered"})


@dataclass(frozen=True)
class ProbeOutcome:
    probe: Probe
    observed: str  # reach, isolated, open, refused, filtered, unproven, skipped
    rtt_ms: float | None = None
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.observed in (REACHED if self.probe.reach else HELD_APART)

    @property
    def expected(self) -> str:
        if self.probe.proto == "icmp":
            return "reach" if self.probe.reach else "isolated"
        return "open" if self.probe.reach else "filtered"

    def to_json(self) -> dict[str, Any]:
        p = self.probe
        return {"from": p.source, "to": p.target, "family": p.family, "address": str(p.address.ip),
                "proto": p.proto, "port": p.port, "size": p.size, "control": p.control,
                "expected": self.expected, "observed": self.observed, "ok": self.ok,
                "rtt_ms": self.rtt_ms, "reason": p.reason, "hint": self.hint}


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


def _node(target: str) -> str:
    return target.partition(":")[0]


def _sends(rows: Sequence[Probe], run: str) -> dict[int, Send]:
    return {k: Send(p.source, str(p.address.ip), p.proto, p.port or 0, p.size or 0,
                    f"vnet:{run}:{k}" if p.proto == "udp" else "")
            for k, p in enumerate(rows)}


def _listenings(lab: Lab, rows: Sequence[Probe]) -> dict[str, list[Listening]]:
    """Per target kind, the listeners TCP/UDP rows need (tap nodes' guests listen themselves)."""
    wanted: dict[tuple[str, str, int], set[int]] = {}
    for p in rows:
        if p.proto != "icmp" and lab.topology.nodes[_node(p.target)].kind in PROBE_KINDS:
            wanted.setdefault((_node(p.target), p.proto, p.port or 0), set()).add(p.address.version)
    out: dict[str, list[Listening]] = {}
    for (node, proto, port), versions in sorted(wanted.items()):
        out.setdefault(lab.topology.nodes[node].kind, []).append(
            Listening(node, proto, port, tuple(sorted(versions))))
    return out


def _send_all(lab: Lab, sends: Sequence[Send], timeout: float,
              answered: Callable[[int], None] = lambda _: None) -> dict[Send, Answer]:
    """Every kind's sends through its runner, all kinds at once (a `per_node` kind's node by
    node); `answered(n)` as each batch of n answers comes back."""
    batches: dict[tuple[str, str], list[Send]] = {}
    for send in dict.fromkeys(sends):
        kind = lab.topology.nodes[send.node].kind
        batches.setdefault((kind, send.node if PROBE_KINDS[kind].per_node else ""), []).append(send)
    found: dict[Send, Answer] = {}
    with ThreadPoolExecutor(max_workers=max(1, len(batches))) as pool:
        running = [pool.submit(PROBE_KINDS[kind].send, lab, batch, timeout)
                   for (kind, _), batch in batches.items()]
        for future in as_completed(running):
            answers = future.result()
            found.update(answers)
            answered(len(answers))
    return found


def _round(lab: Lab, sends: Sequence[Send], timeout: float, number: int,
           progress: Progress) -> dict[Send, Answer]:
    """One round of sends, reported as its answers come back."""
    total, done = len(dict.fromkeys(sends)), [0]
    progress(ProbesAnswered(0, total, number))

    def answered(count: int) -> None:
        done[0] += count
        progress(ProbesAnswered(done[0], total, number))
    return _send_all(lab, sends, timeout, answered)


def prove(graph: LabGraph, timeout: float = 1.5, progress: Progress = ignore) -> list[ProbeOutcome]:
    lab = graph.lab
    rows = graph.expectations()
    sends = _sends(rows, secrets.token_hex(4))
    present = {node: PROBE_KINDS[spec.kind].present(lab, node)
               for node, spec in lab.topology.nodes.items() if spec.kind in PROBE_KINDS}
    runnable = {k: s for k, s in sends.items() if present.get(s.node)}
    with contextlib.ExitStack() as stack:
        receipts: list[Receipts] = [stack.enter_context(PROBE_KINDS[kind].listen(lab, wanted))
                                    for kind, wanted in _listenings(lab, rows).items()]
        answers = _round(lab, list(runnable.values()), timeout, 0, progress)
        for number in range(1, RETRIES + 1):
            got = {token for read in receipts for token in read()}
            again = [s for k, s in runnable.items()
                     if rows[k].reach and _observed(s, answers[s], got) not in REACHED]
            if not again:
                break
            answers.update(_round(lab, again, timeout, number, progress))
        got = {token for read in receipts for token in read()}
    outcomes = [_outcome(lab, p, sends[k], answers.get(sends[k]), got, present) for k, p in enumerate(rows)]
    return _with_controls(outcomes)


def _observed(send: Send, answer: Answer, received: set[str]) -> str:
    if send.proto == "icmp":
        return "reach" if answer.state == ANSWERED else "isolated"
    if send.token in received if send.proto == "udp" else answer.state == ANSWERED:
        return "open"
    return "refused" if answer.state == REFUSED else "filtered"


def _outcome(lab: Lab, probe: Probe, send: Send, answer: Answer | None, received: set[str],
             present: dict[str, bool]) -> ProbeOutcome:
    if probe.source not in present:
        kind = lab.topology.nodes[probe.source].kind
        return ProbeOutcome(probe, "skipped",
                            hint=f"vnet cannot run probes inside a {kind} node (no agent there)")
    if answer is None:
        return ProbeOutcome(probe, "skipped", hint=f"{probe.source} is not running on this host: "
                                                   f"run `vnet apply {lab.file}`")
    observed = _observed(send, answer, received)
    outcome = ProbeOutcome(probe, observed, answer.rtt_ms if observed in REACHED else None)
    if outcome.ok:
        return outcome
    hint = _said(lab, probe, answer) or _hint(lab, probe, observed)
    return ProbeOutcome(probe, observed, outcome.rtt_ms, hint)


def _said(lab: Lab, probe: Probe, answer: Answer) -> str:
    """What a hop said about the probe, naming the hop; "" for the source's own kernel (it
    reports ARP/ND failures as unreachable: the hint says more)."""
    if not answer.hop:
        return answer.detail
    owner = next((i for i in lab.interfaces.values()
                  if any(str(a.ip) == answer.hop for a in i.addresses)), None)
    if owner is not None and owner.node == probe.source:
        return ""
    return f"{answer.hop}{f' ({owner})' if owner else ''} says: {answer.detail}"


def _with_controls(outcomes: list[ProbeOutcome]) -> list[ProbeOutcome]:
    """Isolation rows whose source proved none of its reach rows of that protocol and family."""
    proven = {(o.probe.source, o.probe.proto, o.probe.address.version) for o in outcomes
              if o.probe.reach and o.ok}
    return [_unproven(o) if not o.probe.reach and o.ok and
            (o.probe.source, o.probe.proto, o.probe.address.version) not in proven else o for o in outcomes]


def _unproven(outcome: ProbeOutcome) -> ProbeOutcome:
    p = outcome.probe
    return ProbeOutcome(p, "unproven", None,
                        f"no positive control passed for {p.source} ({p.proto}, {p.family}): an isolation "
                        "row proves something only when its source reaches something; fix the failing "
                        "reach rows first (or give it a peer)")


def _hint(lab: Lab, probe: Probe, observed: str) -> str:
    target = probe.address
    if not probe.reach:
        return {"reach": "an echo reply came back: the isolation is broken (a path exists that should not)",
                "open": "the target answered: the isolation is broken (a path exists that should not)",
                "refused": f"a {probe.proto.upper()} refusal came back from {target.ip}: the target is "
                           "reachable (the isolation is broken)"}[observed]
    if probe.size is not None:
        return (f"a {probe.size}-byte don't-fragment frame did not arrive: a link on the path has a smaller "
                "MTU (`vnet trace` shows the hops)")
    if observed == "refused":
        return (f"{target.ip} refused port {probe.port}: nothing listens there (vnet's listener could not "
                "start, or a firewall rejects it)")
    if observed == "filtered":
        return (f"no answer to {probe.proto.upper()} port {probe.port} within the timeout: if ICMP passes, "
                "something on the path drops this protocol (an OpenFlow rule, a firewall) or breaks its "
                "checksums")
    mine = [a for i in lab.interfaces_of(probe.source) for a in i.addresses]
    if any(target.ip in a.cidr for a in mine):
        return (f"no reply from {target.ip} on a connected subnet: ARP/ND unanswered or the L2 "
                "path is broken (check the segment with `vnet trace`)")
    if not getattr(lab.topology.nodes[probe.source], "routes", ()):
        return f"no route from {probe.source} to {target.ip}: add a route (or a default route)"
    return f"no reply from {target.ip}: a router on the way may lack a route back or forwarding"

"""Probes from and listeners in netns nodes: vnet's engine with sockets opened in the namespaces.

Probes go all at once when the host's neighbour tables can take them, else in waves that fit
(neighbours.py), with the lab's learnt ARP/ND entries cleared between waves.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator, Sequence

from vnet.host import netns
from vnet.marks import netns_name
from vnet.topology.lab import Lab
from vnet.verification import neighbours
from vnet.verification.engine import Answer, Listen, Request, SocketKind, listening, probe_all
from vnet.verification.sends import Listening, Receipts, Send


def opener(namespace: str, kinds: Sequence[SocketKind]) -> list[socket.socket]:
    """Sockets made inside `namespace` (they stay there: no setns for sending)."""
    with netns.entered(namespace):
        return [socket.socket(family, kind, proto) for family, kind, proto in kinds]


def present(lab: Lab, node: str) -> bool:
    return netns.exists(netns_name(lab.name, node))


def send(lab: Lab, sends: Sequence[Send], timeout: float) -> dict[Send, Answer]:
    requests = {s: Request(netns_name(lab.name, s.node), s.address, s.proto, s.port, s.size, s.token)
                for s in sends}
    owner = {str(a.ip): netns_name(lab.name, i.node) for i in lab.interfaces.values() for a in i.addresses}

    def pair(request: Request) -> frozenset[str]:
        # a -> b and b -> a share their two neighbour entries (and b learns a's MAC from a's ARP
        # request, so b needs none of its own): one wave for both halves the broadcasts.
        return frozenset((request.namespace, owner.get(request.address, request.address)))

    answers: dict[Request, Answer] = {}
    batches = neighbours.waves(list(requests.values()), neighbours.free_entries(), pair)
    for number, batch in enumerate(batches, 1):
        answers.update(probe_all(batch, timeout, opener))
        if number < len(batches):
            neighbours.flush(netns_name(lab.name, node) for node, spec in lab.topology.nodes.items()
                             if spec.kind == "netns")
    return {s: answers[request] for s, request in requests.items()}


@contextlib.contextmanager
def listen(lab: Lab, listens: Sequence[Listening]) -> Iterator[Receipts]:
    wanted = [Listen(netns_name(lab.name, x.node), x.proto, x.port, x.versions) for x in listens
              if present(lab, x.node)]
    with listening(wanted, opener) as listeners:
        yield listeners.received

"""verify and the host's neighbour tables (vnet/verification/neighbours.py).

The ARP and ND tables are shared by every namespace of the host and hold gc_thresh3 entries
(1024 by default): linear,100's derived matrix (9,900 probes) failed with ENOBUFS on most sends
until verify learnt to probe in waves and clear the lab's entries between them. The limit is a
host-wide sysctl that a test must not change, so the wave size is forced small here through
`free_entries`; the waves, the matching of replies across them and the flush run for real.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from vnet import api
from vnet.verification import engine, neighbours

from .conftest import Labs
from .hostlib import ip_json, run

pytestmark = pytest.mark.root

HOSTS = 12


def _lan(hosts: int) -> str:
    nodes = "".join(f"  h{k}: {{kind: netns}}\n" for k in range(1, hosts + 1))
    links = "".join(f'  - {{endpoints: [h{k}:eth0, $b1], ip: [198.18.9.{k}/24, "fd00:9::{k}/64"]}}\n'
                    for k in range(1, hosts + 1))
    return f"name: $lab\nswitches:\n  $b1: {{type: linux}}\nnodes:\n{nodes}links:\n{links}"


def _learnt(namespace: str) -> list[str]:
    return [n["dst"] for n in ip_json("neigh", "show", netns=namespace)
            if "PERMANENT" not in n.get("state", []) and not n["dst"].startswith("ff")]


def test_verify_probes_in_waves_and_clears_entries_between_them(
        labs: Labs, monkeypatch: pytest.MonkeyPatch) -> None:
    lab = labs.new("nb")
    lab.write(_lan(HOSTS))
    loaded = lab.load()
    api.apply(loaded)
    namespaces = {lab.namespace(f"h{k}") for k in range(1, HOSTS + 1)}
    flushed: list[set[str]] = []
    real_flush = neighbours.flush

    def flush(names: Iterable[str]) -> None:
        names = set(names)
        flushed.append(names)
        real_flush(names)
        assert not any(_learnt(ns) for ns in names), "entries left after a flush"

    monkeypatch.setattr(neighbours, "free_entries", lambda: neighbours.MARGIN + 2 * 40)
    monkeypatch.setattr(neighbours, "flush", flush)
    result = api.verify(loaded)
    assert result.ok, [o.to_json() for o in result.outcomes if not o.ok]
    # per ordered pair and family: ICMP, TCP and the MTU row, each to one address
    assert len(result.outcomes) == HOSTS * (HOSTS - 1) * 2 * 3
    pairs = len({frozenset((o.probe.source, o.probe.target)) for o in result.outcomes})
    assert pairs == HOSTS * (HOSTS - 1) // 2
    # one flush between waves; every row between two hosts (both ways, both families) shares a
    # wave and its two entries per table
    assert len(flushed) >= -(-pairs // 40) - 1 >= 1 and all(names == namespaces for names in flushed)


def test_flush_keeps_static_entries_and_the_devices_multicast_addresses(labs: Labs) -> None:
    """Only learnt ARP/ND entries go: a static entry stays, and the AF_BRIDGE rows of the dump
    (each device's own multicast addresses) are not deleted, or IPv6 neighbour discovery, which
    listens on them, would stop working: verify passes again over IPv6 after the flush."""
    lab = labs.new("nf")
    lab.write(_lan(3))
    loaded = lab.load()
    api.apply(loaded)
    assert api.verify(loaded).ok
    h1 = lab.namespace("h1")
    run("ip", "-n", h1, "neigh", "add", "198.18.9.99", "lladdr", "02:00:00:00:00:99", "dev", "eth0",
        "nud", "permanent")
    assert _learnt(h1)
    neighbours.flush([lab.namespace(f"h{k}") for k in (1, 2, 3)])
    assert not any(_learnt(lab.namespace(f"h{k}")) for k in (1, 2, 3))
    static = [n for n in ip_json("neigh", "show", netns=h1) if n["dst"] == "198.18.9.99"]
    assert static and "PERMANENT" in static[0]["state"]
    maddr = run("ip", "-n", h1, "maddr", "show", "dev", "eth0").stdout
    assert "33:33:ff:00:00:01" in maddr  # h1's solicited-node group (fd00:9::1)
    again = api.verify(loaded)
    assert again.ok and {o.probe.family for o in again.outcomes} == {"ipv4", "ipv6"}


def test_free_entries_and_waves(tmp_path: Path) -> None:
    tables = (("ipv4", "arp_cache", 1024, 0x300), ("ipv6", "ndisc_cache", 2048, 0x10))
    for family, stat, limit, used in tables:
        (tmp_path / f"sys/net/{family}/neigh/default").mkdir(parents=True)
        (tmp_path / f"sys/net/{family}/neigh/default/gc_thresh3").write_text(f"{limit}\n")
        (tmp_path / "net/stat").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"net/stat/{stat}").write_text(
            "entries  allocs   destroys\n" + f"{used:08x} 00001637 000016b1\n" * 2)
    assert neighbours.free_entries(tmp_path) == 1024 - 0x300  # the fuller table
    assert neighbours.free_entries(tmp_path / "missing") > 1 << 20  # unknown: no waves
    (tmp_path / "sys/net/ipv4/neigh/default/gc_thresh3").unlink()  # as in a container's namespace
    assert neighbours.free_entries(tmp_path) == neighbours.DEFAULT_GC_THRESH3 - 0x300
    items = list(range(100))
    assert neighbours.waves(items, 10**9) == [items]
    assert [len(w) for w in neighbours.waves(items, neighbours.MARGIN + 2 * 40)] == [40, 40, 20]
    assert [len(w) for w in neighbours.waves(items, 0)] == [32, 32, 32, 4]  # never below MIN_WAVE
    assert neighbours.waves([], 0) == [[]]


def test_a_full_neighbour_table_is_named_not_taken_for_silence() -> None:
    """When the table is full anyway (other labs, containers), the kernel refuses the send with
    ENOBUFS: the probe's hint says so instead of "ARP/ND unanswered". (A socket that refuses is
    simulated: filling the host's shared table would disturb everything else on it.)"""
    class FullTable(socket.socket):
        def sendto(self, *args: object) -> int:  # type: ignore[override]
            raise OSError(errno.ENOBUFS, "No buffer space available")

    def opener(namespace: str, kinds: Sequence[engine.SocketKind]) -> list[socket.socket]:
        return [FullTable(*kind) for kind in kinds]

    full = engine.Request("ns", "198.18.9.2")
    answer = engine.probe_all([full], 0.2, opener)[full]
    assert answer.state == engine.SILENT and "gc_thresh3" in answer.detail

"""NetlinkSocket against the real kernel, inside private network namespaces only.

Each test gets fresh namespaces (`ip netns add vnettest-<random>`, deleted by the fixture's
finalizer even when the test fails). The test thread enters a namespace only to open a socket
there and returns at once; the socket keeps working in that namespace. Nothing is done in the
host namespace.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil
import struct
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from vnet.netlink import BridgeOptions, LinkMsg, NetlinkError, NetlinkSocket, VethPeer, wire
from vnet.netlink import constants as c
from vnet.netlink.parse import parse_messages

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                                reason="needs root (network namespaces) and iproute2's ip")

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _ns_inode(path: str) -> int:
    return os.stat(path).st_ino


def open_in(name: str, rcvbuf: int = 4 << 20) -> NetlinkSocket:
    """A NetlinkSocket bound to namespace `name`; this thread returns to its namespace."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            assert _ns_inode("/proc/thread-self/ns/net") == _ns_inode(f"/run/netns/{name}")
            return NetlinkSocket(rcvbuf=rcvbuf)
        finally:
            _setns(home)
    finally:
        os.close(target)
        os.close(home)


@pytest.fixture
def make_netns() -> Iterator[Callable[[], str]]:
    created: list[str] = []

    def make() -> str:
        name = f"vnettest-{secrets.token_hex(4)}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        created.append(name)
        return name

    yield make
    for name in created:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def nl(make_netns: Callable[[], str]) -> Iterator[NetlinkSocket]:
    sock = open_in(make_netns())
    yield sock
    sock.close()


def by_name(sock: NetlinkSocket) -> dict[str, LinkMsg]:
    return {link.name: link for link in sock.links()}


@pytest.mark.root
@needs_root
def test_bridges_and_veths_in_one_batch(nl: NetlinkSocket) -> None:
    batch = []
    for i in range(3):
        batch.append(wire.new_link(create=True, ifname=f"tbr{i}", index=100 + i, kind="bridge",
                                   bridge=BridgeOptions(stp_state=0, forward_delay=2, ageing_time=60)))
        batch.append(wire.new_link(index=100 + i, alias=f"vnet:t:br{i}", group=7, up=True))
    for i in range(2):  # veth tva<i> on tbr<i>, its peer tvb<i> on tbr<i+1>
        batch.append(wire.new_link(create=True, ifname=f"tva{i}", index=200 + i, kind="veth", group=7,
                                   master=100 + i, mtu=1400, mac=f"02:00:00:00:0a:0{i}", up=True,
                                   peer=VethPeer(f"tvb{i}", index=300 + i, group=7, mtu=1400)))
        batch.append(wire.new_link(ifname=f"tva{i}", alias=f"vnet:t:a{i}"))
        batch.append(wire.new_link(ifname=f"tvb{i}", alias=f"vnet:t:b{i}", master=101 + i, up=True,
                                   mac=f"02:00:00:00:0b:0{i}"))
    acks = nl.transact(batch)
    assert [a.errno for a in acks] == [0] * len(batch), acks
    links = by_name(nl)
    for i in range(3):
        br = links[f"tbr{i}"]
        assert (br.index, br.kind, br.alias, br.group, br.up) == (100 + i, "bridge", f"vnet:t:br{i}", 7, True)
        assert br.bridge is not None
        assert (br.bridge.stp_state, br.bridge.forward_delay, br.bridge.ageing_time) == (0, 2.0, 60.0)
    for i in range(2):
        a, b = links[f"tva{i}"], links[f"tvb{i}"]
        assert (a.index, a.kind, a.master, a.mtu, a.mac, a.up, a.alias) == (
            200 + i, "veth", 100 + i, 1400, f"02:00:00:00:0a:0{i}", True, f"vnet:t:a{i}")
        assert (b.index, b.master, b.mtu, b.mac, b.up, b.alias) == (
            300 + i, 101 + i, 1400, f"02:00:00:00:0b:0{i}", True, f"vnet:t:b{i}")
        assert a.peer_index == b.index and b.peer_index == a.index and a.link_netnsid is None
        assert a.slave_kind == "bridge"
    # the operational state follows asynchronously (linkwatch), within about a second
    deadline = time.monotonic() + 3
    while by_name(nl)["tva0"].oper_state != "up" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert by_name(nl)["tva0"].oper_state == "up"


@pytest.mark.root
@needs_root
def test_modify_bridge_and_detach(nl: NetlinkSocket) -> None:
    nl.check([wire.new_link(create=True, ifname="mbr", index=50, kind="bridge"),
              wire.new_link(create=True, ifname="mva", kind="veth", master=50, peer=VethPeer("mvb"))])
    nl.check([wire.new_link(ifname="mbr", kind="bridge", bridge=BridgeOptions(ageing_time=12.5)),
              wire.new_link(ifname="mva", master=0)])
    links = by_name(nl)
    assert links["mbr"].bridge is not None and links["mbr"].bridge.ageing_time == 12.5
    assert links["mva"].master is None
    nl.check([wire.new_link(index=links["mva"].index, ifname="renamed", alias="")])
    assert "renamed" in by_name(nl)


@pytest.mark.root
@needs_root
def test_errors_in_the_middle_of_a_batch(nl: NetlinkSocket) -> None:
    acks = nl.transact([
        wire.new_link(create=True, ifname="eok1", kind="bridge"),
        wire.new_link(create=True, ifname="eok1", kind="bridge"),  # duplicate name
        wire.new_link(create=True, ifname="ebad", kind="bridge", mtu=10),  # below the minimum
        wire.del_link(ifname="nosuchdev"),
        wire.new_link(create=True, ifname="eok2", kind="bridge"),
    ])
    assert [a.errno for a in acks] == [0, errno.EEXIST, errno.EINVAL, errno.ENODEV, 0]
    assert "mtu" in acks[2].message
    names = by_name(nl)
    assert {"eok1", "eok2"} <= names.keys() and "ebad" not in names
    with pytest.raises(NetlinkError) as caught:
        nl.check([wire.new_link(create=True, ifname="eok1", kind="bridge")])
    assert caught.value.errno == errno.EEXIST


@pytest.mark.root
@needs_root
def test_addresses(nl: NetlinkSocket) -> None:
    nl.check([wire.new_link(create=True, ifname="abr", index=20, kind="bridge", up=True),
              wire.new_addr(20, "198.18.5.1", 24), wire.new_addr(20, "198.18.6.1", 24),
              wire.new_addr(20, "fd00:5::1", 64)])
    found = {(a.address, a.prefixlen, a.family) for a in nl.addresses(index=20)}
    assert found >= {("198.18.5.1", 24, c.AF_INET), ("198.18.6.1", 24, c.AF_INET),
                     ("fd00:5::1", 64, c.AF_INET6)}
    v6 = [a for a in nl.addresses(family=c.AF_INET6, index=20) if a.address == "fd00:5::1"]
    assert v6 and v6[0].flags & c.IFA_F_NODAD and not v6[0].flags & c.IFA_F_TENTATIVE
    acks = nl.transact([wire.new_addr(20, "198.18.5.1", 24),
                        wire.new_addr(20, "198.18.5.1", 24, replace=True),
                        wire.del_addr(20, "198.18.6.1", 24), wire.del_addr(20, "fd00:5::1", 64)])
    assert [a.errno for a in acks] == [errno.EEXIST, 0, 0, 0]
    left = {a.address for a in nl.addresses(index=20)}
    assert "198.18.5.1" in left and not left & {"198.18.6.1", "fd00:5::1"}


@pytest.mark.root
@needs_root
def test_routes(nl: NetlinkSocket) -> None:
    nl.check([wire.new_link(create=True, ifname="ra", index=30, kind="veth", up=True,
                            peer=VethPeer("rb", index=31)),
              wire.new_link(index=31, up=True),
              wire.new_addr(30, "198.18.1.1", 24), wire.new_addr(30, "fd00:1::1", 64)])
    routes = [wire.new_route(dst="198.18.2.0", dst_len=24, gateway="198.18.1.2"),
              wire.new_route(gateway="198.18.1.254", priority=100),
              wire.new_route(dst="fd00:2::", dst_len=64, gateway="fd00:1::2", oif=30),
              wire.new_route(family=c.AF_INET, dst="198.18.3.0", dst_len=24, oif=30)]
    nl.check(routes)
    mine = {(r.dst, r.dst_len, r.gateway, r.priority) for r in nl.routes() if r.protocol == c.RTPROT_STATIC}
    assert mine == {("198.18.2.0", 24, "198.18.1.2", 0), (None, 0, "198.18.1.254", 100),
                    ("fd00:2::", 64, "fd00:1::2", 1024), ("198.18.3.0", 24, None, 0)}
    assert all(r.table == c.RT_TABLE_MAIN for r in nl.routes())
    assert {r.family for r in nl.routes(family=c.AF_INET6)} == {c.AF_INET6}
    nl.check([wire.del_route(dst="198.18.2.0", dst_len=24),
              wire.del_route(gateway="198.18.1.254", priority=100),
              wire.del_route(dst="fd00:2::", dst_len=64, gateway="fd00:1::2"),
              wire.del_route(family=c.AF_INET, dst="198.18.3.0", dst_len=24, oif=30)])
    assert not [r for r in nl.routes() if r.protocol == c.RTPROT_STATIC]
    acks = nl.transact([wire.del_route(dst="198.18.2.0", dst_len=24)])
    assert acks[0].errno == errno.ESRCH


@pytest.mark.root
@needs_root
def test_delete_a_link_group(nl: NetlinkSocket) -> None:
    batch = [wire.new_link(create=True, ifname=f"g{i}", kind="veth", group=77,
                           peer=VethPeer(f"gp{i}", group=77)) for i in range(3)]
    batch += [wire.new_link(create=True, ifname="gbr", kind="bridge", group=78),
              wire.new_link(create=True, ifname="gdef", kind="bridge")]
    nl.check(batch)
    before = by_name(nl)
    assert sum(1 for link in before.values() if link.group == 77) == 6
    nl.check([wire.del_link_group(77)])
    after = by_name(nl)
    assert set(after) == set(before) - {f"g{i}" for i in range(3)} - {f"gp{i}" for i in range(3)}
    assert after["gbr"].group == 78 and after["gdef"].group == 0
    assert nl.transact([wire.del_link_group(77)])[0].errno == errno.ENODEV


@pytest.mark.root
@needs_root
def test_veth_peer_created_in_another_namespace(make_netns: Callable[[], str]) -> None:
    first, second = make_netns(), make_netns()
    with open_in(first) as here, open_in(second) as there:
        fd = os.open(f"/run/netns/{second}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            here.check([wire.new_link(create=True, ifname="xa", kind="veth", up=True,
                                      peer=VethPeer("eth0", netns_fd=fd, mtu=1300))])
        finally:
            os.close(fd)
        there.check([wire.new_link(ifname="eth0", up=True, alias="vnet:t:x:eth0")])
        near, far = by_name(here)["xa"], by_name(there)["eth0"]
        assert "eth0" not in by_name(here)
        assert near.link_netnsid is not None and far.link_netnsid is not None
        assert near.peer_index == far.index and far.peer_index == near.index
        assert (far.mtu, far.alias, far.up) == (1300, "vnet:t:x:eth0", True)


@pytest.mark.root
@needs_root
def test_chunked_batches_and_many_links(nl: NetlinkSocket) -> None:
    nl.max_chunk_messages = 50  # force several sendto calls
    count = 150  # veth pairs: deleting bridges costs the kernel ~16 ms each, veths ~0.2 ms
    batch = [wire.new_link(create=True, ifname=f"ca{i}", kind="veth", group=9,
                           peer=VethPeer(f"cb{i}", group=9)) for i in range(count)]
    batch.insert(120, wire.new_link(create=True, ifname="cb7", kind="bridge"))  # one failure mid-way
    acks = nl.transact(batch)
    assert [i for i, a in enumerate(acks) if a.errno] == [120]
    assert acks[120].errno == errno.EEXIST
    assert sum(1 for link in nl.links() if link.group == 9) == 2 * count
    nl.check([wire.del_link_group(9)])
    assert not [link for link in nl.links() if link.group == 9]


@pytest.mark.root
@needs_root
def test_bad_requests_and_closed_socket(nl: NetlinkSocket) -> None:
    with pytest.raises(ValueError):
        nl.transact([b"\0" * 10])
    with pytest.raises(ValueError):
        nl.dump(wire.del_link(index=1))
    assert nl.transact([]) == []
    nl.close()
    with pytest.raises(NetlinkError) as caught:
        nl.links()
    assert caught.value.errno == errno.EBADF


@pytest.mark.root
@needs_root
def test_lost_acknowledgements_raise_instead_of_hanging(make_netns: Callable[[], str]) -> None:
    with open_in(make_netns(), rcvbuf=4096) as small:
        assert small.max_chunk_messages == 16  # derived from the (tiny) receive buffer
        small.max_chunk_messages = 2000  # overrule it: the kernel must drop ACKs
        with pytest.raises(NetlinkError) as caught:
            small.transact([wire.new_link(index=1, alias=f"a{i}") for i in range(2000)])
        assert caught.value.errno == errno.ENOBUFS


# -- socket logic against scripted answers (no kernel changes, no root) -------------------------

def _answer(kind: int, flags: int, seq: int, payload: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, flags, seq, 0) + payload


class Scripted:
    """Replaces a socket's I/O: answers each sent buffer with what `reply(seqs)` returns."""

    def __init__(self, sock: NetlinkSocket, reply: Callable[[list[int]], list[bytes]]) -> None:
        self.reply = reply
        self.pending: list[bytes] = []
        self.sent = 0
        self.sock = sock
        sock._send = self.send  # type: ignore[method-assign]
        sock._recv_size = self.recv_size  # type: ignore[method-assign]

    def send(self, data: bytes) -> None:
        self.sent += 1
        self.pending += self.reply([m.seq for m in parse_messages(data)])

    def recv_size(self) -> int:
        data = self.pending.pop(0)
        self.sock._buf[:len(data)] = data
        return len(data)


def _link_payload(name: str) -> bytes:
    return wire.IFINFOMSG.pack(0, 1, 3, 0, 0) + wire.attr_str(c.IFLA_IFNAME, name)


def test_transact_maps_out_of_order_and_stale_answers() -> None:
    def reply(seqs: list[int]) -> list[bytes]:
        stale = _answer(c.NLMSG_ERROR, c.NLM_F_CAPPED, seqs[0] - 1, struct.pack("=i", -1) + b"\0" * 16)
        acks = [_answer(c.NLMSG_ERROR, c.NLM_F_CAPPED, seq, struct.pack("=i", -errno.EEXIST if seq % 2
                                                                        else 0) + b"\0" * 16)
                for seq in reversed(seqs)]
        return [stale, b"".join(acks[:2]), *acks[2:]]

    with NetlinkSocket() as sock:
        sock.max_chunk_messages = 3
        script = Scripted(sock, reply)
        acks = sock.transact([wire.del_link(index=i + 1) for i in range(7)])
    assert script.sent == 3
    assert [a.errno for a in acks] == [errno.EEXIST if i % 2 else 0 for i in range(1, 8)]


def test_interrupted_dump_is_repeated() -> None:
    attempts: list[int] = []

    def reply(seqs: list[int]) -> list[bytes]:
        attempts.append(seqs[0])
        intr = c.NLM_F_DUMP_INTR if len(attempts) < 3 else 0
        parts = [_answer(c.RTM_NEWLINK, c.NLM_F_MULTI | intr, seqs[0], _link_payload(f"x{len(attempts)}")),
                 _answer(c.NLMSG_DONE, c.NLM_F_MULTI | intr, seqs[0], struct.pack("=i", 0))]
        return [b"".join(parts)]

    with NetlinkSocket() as sock:
        Scripted(sock, reply)
        links = sock.links()
    assert [link.name for link in links] == ["x3"] and len(attempts) == 3


def test_always_interrupted_dump_and_dump_errors() -> None:
    def interrupted(seqs: list[int]) -> list[bytes]:
        return [_answer(c.NLMSG_DONE, c.NLM_F_MULTI | c.NLM_F_DUMP_INTR, seqs[0], struct.pack("=i", 0))]

    def failing(seqs: list[int]) -> list[bytes]:
        tlv = wire.attr_str(c.NLMSGERR_ATTR_MSG, "no dumps today")
        return [_answer(c.NLMSG_DONE, c.NLM_F_MULTI | c.NLM_F_ACK_TLVS, seqs[0],
                        struct.pack("=i", -errno.EINVAL) + tlv)]

    with NetlinkSocket() as sock:
        Scripted(sock, interrupted)
        with pytest.raises(NetlinkError) as caught:
            sock.links()
        assert caught.value.errno == errno.EINTR
        Scripted(sock, failing)
        with pytest.raises(NetlinkError) as caught:
            sock.routes()
        assert (caught.value.errno, caught.value.message) == (errno.EINVAL, "no dumps today")


def test_requests_that_cannot_be_acknowledged_are_refused() -> None:
    with NetlinkSocket() as sock:
        with pytest.raises(ValueError):
            sock.transact([wire.dump_links()])
        with pytest.raises(ValueError):
            sock.transact([wire.message(c.RTM_NEWLINK, c.NLM_F_REQUEST, wire.IFINFOMSG.pack(0, 0, 1, 0, 0))])
        with pytest.raises(ValueError):
            sock.dump(wire.new_link(create=True, ifname="x", kind="bridge"))

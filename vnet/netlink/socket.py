"""A NETLINK_ROUTE socket that sends many requests per sendto and collects one ACK for each.

The socket belongs to the network namespace the calling thread is in when it is constructed,
for its whole life: to work in another namespace, enter it (setns(2) on this thread, e.g.
`vnet.host.netns.entered(name)`), construct the socket, and return; the socket keeps
working there. The kernel handles a batch synchronously inside sendto and answers every
message of it, errors included, so `transact` reports each message's result in order.
Not thread-safe: use one socket per thread.
"""

from __future__ import annotations

import errno
import os
import select
import socket as _socket
import struct
import time
from collections.abc import Iterator, Sequence
from types import TracebackType

from vnet.netlink import constants as c
from vnet.netlink.errors import NetlinkError
from vnet.netlink.parse import (
    Ack,
    AddrMsg,
    LinkMsg,
    Message,
    RouteMsg,
    decode_ack,
    decode_addr,
    decode_link,
    decode_netconf,
    decode_route,
    parse_messages,
)
from vnet.netlink.wire import HEADER, dump_addrs, dump_links, dump_netconf, dump_routes

_SEQ = struct.Struct("=I")
_ACK_HEAD = struct.Struct("=IHHIIi")  # nlmsghdr + nlmsgerr.error
_RECV_FLAGS = int(_socket.MSG_DONTWAIT | _socket.MSG_TRUNC)
MAX_CHUNK_BYTES = 64 * 1024  # requests per sendto
MAX_CHUNK_MESSAGES = 1024
ACK_BUDGET = 2048  # receive-buffer bytes reserved per expected ACK (skb truesize, with margin)
# One datagram: the kernel fills dump messages up to 32 KiB (netlink_recvmsg caps
# max_recvmsg_len there); ACKs are small. Kept per socket, so not larger than needed: zeroing
# 256 KiB per socket cost ~0.1 ms, i.e. ~25 ms of observing 250 namespaces.
RECV_BUFFER = 64 * 1024
DUMP_RETRIES = 30  # a host where other software churns devices interrupts dumps often
DUMP_PATIENCE = 20.0  # seconds
_OK = Ack(0)


def _oserror(exc: OSError, what: str) -> NetlinkError:
    code = exc.errno or errno.EIO
    return NetlinkError(code, f"{what}: {exc.strerror or os.strerror(code)}")


class NetlinkSocket:
    """rtnetlink in the calling thread's current namespace; see the module docstring."""

    def __init__(self, *, rcvbuf: int = 4 << 20, timeout: float = 30.0) -> None:
        self.timeout = timeout
        try:
            self._sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC,
                                        c.NETLINK_ROUTE)
        except OSError as exc:
            raise _oserror(exc, "open a netlink socket") from None
        try:
            self._configure(rcvbuf)
        except OSError as exc:
            self._sock.close()
            raise _oserror(exc, "configure the netlink socket") from None
        effective = self._sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF)
        self.max_chunk_messages = max(16, min(MAX_CHUNK_MESSAGES, effective // ACK_BUDGET))
        self._buf = bytearray(RECV_BUFFER)
        self._view = memoryview(self._buf)
        self._poll = select.poll()
        self._poll.register(self._sock, select.POLLIN)
        self._seq = 0

    def _configure(self, rcvbuf: int) -> None:
        sock = self._sock
        sock.setsockopt(c.SOL_NETLINK, c.NETLINK_EXT_ACK, 1)
        sock.setsockopt(c.SOL_NETLINK, c.NETLINK_CAP_ACK, 1)
        try:  # dump requests are validated and filtered (by table, by index) in the kernel
            sock.setsockopt(c.SOL_NETLINK, c.NETLINK_GET_STRICT_CHK, 1)
        except OSError as exc:
            if exc.errno != errno.ENOPROTOOPT:
                raise
        try:
            sock.setsockopt(_socket.SOL_SOCKET, c.SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:  # not CAP_NET_ADMIN: capped by net.core.rmem_max
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, rcvbuf)
        sock.bind((0, 0))

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def __enter__(self) -> NetlinkSocket:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- requests with acknowledgements --------------------------------------------------------

    def transact(self, messages: Sequence[bytes]) -> list[Ack]:
        """Send every request (each must carry NLM_F_ACK, as the encoders' do) and return one
        Ack per request, in order. Errors do not stop the batch: the kernel processes every
        message, and each one's errno and extended-ACK text are reported. Raises NetlinkError
        only when the socket itself fails (then the fate of unanswered requests is unknown).
        A malformed request (bad length, no NLM_F_ACK, a dump) raises ValueError before anything
        is sent."""
        for msg in messages:
            _check_request(msg)
            _length, kind, flags, _seq, _pid = HEADER.unpack_from(msg)
            if not flags & c.NLM_F_ACK or _is_get(kind):
                raise ValueError("transact() needs requests with NLM_F_ACK (dumps go to dump())")
        acks: list[Ack | None] = [None] * len(messages)
        for start, stop in self._chunks(messages):
            first = self._next_seq(stop - start)
            self._send(_numbered(messages[start:stop], first))
            self._collect(first, acks, start, stop)
        return [ack if ack is not None else Ack(errno.EIO, "no acknowledgement") for ack in acks]

    def check(self, messages: Sequence[bytes]) -> None:
        """transact, raising the first error as a NetlinkError (after the whole batch ran)."""
        for ack in self.transact(messages):
            if ack.errno:
                raise ack.error()

    def _chunks(self, messages: Sequence[bytes]) -> Iterator[tuple[int, int]]:
        start, size = 0, 0
        for i, msg in enumerate(messages):
            if i > start and (size + len(msg) > MAX_CHUNK_BYTES or i - start >= self.max_chunk_messages):
                yield start, i
                start, size = i, 0
            size += len(msg)
        if start < len(messages):
            yield start, len(messages)

    def _next_seq(self, count: int) -> int:
        first = self._seq + 1
        if first + count > 0xFFFFFFFF:
            first = 1
        self._seq = first + count - 1
        return first

    def _collect(self, first: int, acks: list[Ack | None], start: int, stop: int) -> None:
        pending = stop - start
        while pending:
            size = self._recv_size()
            if size >= _ACK_HEAD.size:  # fast path: one successful ACK, read in place
                length, kind, _flags, seq, _pid, error = _ACK_HEAD.unpack_from(self._buf)
                pos = start + seq - first
                if length == size and kind == c.NLMSG_ERROR and not error and start <= pos < stop:
                    if acks[pos] is None:
                        acks[pos] = _OK
                        pending -= 1
                    continue
            pending -= _record(bytes(self._view[:size]), first, acks, start, stop)

    # -- dumps ---------------------------------------------------------------------------------

    def dump(self, request: bytes) -> list[Message]:
        """Send one dump request (NLM_F_DUMP) and return its messages (NLMSG_DONE excluded).

        A dump that the kernel flags as interrupted (NLM_F_DUMP_INTR: the table changed while
        it was read) is repeated, up to DUMP_RETRIES times; then NetlinkError(EINTR)."""
        _check_request(request)
        _length, kind, flags, _seq, _pid = HEADER.unpack_from(request)
        if flags & c.NLM_F_DUMP != c.NLM_F_DUMP or not _is_get(kind):
            raise ValueError("dump() needs an RTM_GET* request with NLM_F_DUMP")
        # The kernel frees deleted namespaces (and their devices) asynchronously: on a busy host
        # dumps stay interrupted for seconds. Retry with backoff for up to DUMP_PATIENCE seconds.
        deadline = time.monotonic() + DUMP_PATIENCE
        attempt = 0
        while True:
            seq = self._next_seq(1)
            self._send(_numbered([request], seq))
            messages, interrupted = self._read_dump(seq)
            if not interrupted:
                return messages
            attempt += 1
            if attempt > DUMP_RETRIES and time.monotonic() > deadline:
                raise NetlinkError(errno.EINTR, f"dump interrupted {attempt} times in a row")
            time.sleep(min(0.002 * 2 ** attempt, 0.1))  # let the burst of changes pass

    def _read_dump(self, seq: int) -> tuple[list[Message], bool]:
        messages: list[Message] = []
        interrupted = False
        while True:
            for msg in parse_messages(self._recv()):
                if msg.seq != seq:
                    continue
                interrupted = interrupted or bool(msg.flags & c.NLM_F_DUMP_INTR)
                if msg.type in (c.NLMSG_DONE, c.NLMSG_ERROR):
                    ack = decode_ack(msg)
                    if ack.errno:
                        raise ack.error()
                    return messages, interrupted
                messages.append(msg)

    def links(self) -> list[LinkMsg]:
        """Every device of the socket's namespace."""
        return [decode_link(m.payload) for m in self.dump(dump_links()) if m.type == c.RTM_NEWLINK]

    def addresses(self, *, family: int = c.AF_UNSPEC, index: int = 0) -> list[AddrMsg]:
        """IPv4 and IPv6 addresses (of device `index` only, when nonzero)."""
        out = []
        for msg in self.dump(dump_addrs(family=family, index=index)):
            if msg.type == c.RTM_NEWADDR and msg.payload[:1] in (b"\x02", b"\x0a"):
                addr = decode_addr(msg.payload)
                if not index or addr.index == index:
                    out.append(addr)
        return out

    def forwarding(self, family: int = c.AF_INET) -> bool | None:
        """The namespace's net.ipv4.ip_forward or net.ipv6.conf.all.forwarding (the `all` netconf
        entry of the family), read without entering it; None without that family."""
        for msg in self.dump(dump_netconf(family=family)):
            if msg.type == c.RTM_NEWNETCONF:
                index, forwarding = decode_netconf(msg.payload)
                if index == c.NETCONFA_IFINDEX_ALL:
                    return forwarding
        return None

    def routes(self, *, family: int = c.AF_UNSPEC, table: int = c.RT_TABLE_MAIN) -> list[RouteMsg]:
        """IPv4 and IPv6 routes of one table (main by default)."""
        out = []
        for msg in self.dump(dump_routes(family=family, table=table)):
            if msg.type == c.RTM_NEWROUTE and msg.payload[:1] in (b"\x02", b"\x0a"):
                route = decode_route(msg.payload)
                if route.table == table:
                    out.append(route)
        return out

    # -- I/O -----------------------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        try:
            self._sock.send(data)
        except OSError as exc:
            raise _oserror(exc, "send netlink requests") from None

    def _recv(self) -> bytes:
        return bytes(self._view[:self._recv_size()])

    def _recv_size(self) -> int:
        """Receive one datagram into self._buf; its size."""
        while True:
            try:
                size = self._sock.recv_into(self._buf, 0, _RECV_FLAGS)
            except BlockingIOError:
                self._wait()
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    raise NetlinkError(errno.ENOBUFS, "netlink receive buffer overrun: answers were "
                                       "lost; send smaller batches") from None
                raise _oserror(exc, "receive netlink answers") from None
            if size > len(self._buf):
                raise NetlinkError(errno.EMSGSIZE, f"netlink message of {size} bytes exceeds the buffer")
            return int(size)

    def _wait(self) -> None:
        try:
            ready = self._poll.poll(self.timeout * 1000)
        except OSError as exc:
            raise _oserror(exc, "wait for netlink answers") from None
        if not ready:
            raise NetlinkError(errno.ETIMEDOUT, f"no answer from the kernel within {self.timeout} s")


def _record(data: bytes, first: int, acks: list[Ack | None], start: int, stop: int) -> int:
    """Store the ACKs found in `data` (numbered from `first`); how many were new."""
    count = 0
    for msg in parse_messages(data):
        pos = start + msg.seq - first
        if msg.type != c.NLMSG_ERROR or not start <= pos < stop or acks[pos] is not None:
            continue  # a stale answer to an earlier, abandoned request
        acks[pos] = decode_ack(msg)
        count += 1
    return count


def _is_get(kind: int) -> bool:
    """RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, ...: rtnetlink types come in fours from 16."""
    return kind >= c.RTM_NEWLINK and kind % 4 == c.RTM_GETLINK % 4


def _check_request(msg: bytes) -> None:
    if len(msg) < HEADER.size or len(msg) % 4 or (HEADER.unpack_from(msg)[0] + 3) & ~3 != len(msg):
        raise ValueError("not one complete, 4-byte aligned netlink message")


def _numbered(messages: Sequence[bytes], first: int) -> bytes:
    """The messages concatenated, with sequence numbers first, first+1, ..."""
    buf = bytearray(b"".join(messages))
    offset = 0
    for i, msg in enumerate(messages):
        _SEQ.pack_into(buf, offset + 8, first + i)
        offset += len(msg)
    return bytes(buf)

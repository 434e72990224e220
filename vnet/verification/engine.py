"""Probes and listeners: ICMP, MTU, TCP and UDP, from many sources at once, standard library only.

vnet runs this engine for namespace nodes (each socket opened inside its source namespace by the
`opener` it is given: a socket stays in the namespace it was made in) and, as a script, inside
guests that have python3 (disk images; `main`). All probes wait in one epoll loop, so thousands
cost one thread and no subprocess:

- ICMP echo: raw ICMP/ICMPv6 sockets, one per (namespace, IP version), answers matched by
  identifier and sequence number. Requests are repeated within the timeout (the first may
  wait for ARP/ND).
- An MTU probe: an ICMP echo of `size` bytes (the whole IP packet) with don't-fragment set and
  the path MTU cache ignored (IP_PMTUDISC_PROBE, IPV6_DONTFRAG): it must arrive whole. A
  router that cannot forward it answers "fragmentation needed" (IPv6: "packet too big") with
  its next-hop MTU, which the answer's `detail` names; a frame bigger than the source's own
  interface MTU is refused by the kernel at send (EMSGSIZE).
- TCP: a non-blocking connect; `answered` is an established connection (then reset, so no
  TIME_WAIT is left), `refused` a reset, `silent` no answer within the timeout.
- UDP: a connected socket sends a token (repeated within the timeout); `refused` is the ICMP
  port unreachable the kernel reports on the socket. Whether the datagram arrived is known by
  the target's listener (`Listeners.received`), not by the source.

Listeners: for TCP/UDP probes to a namespace, vnet opens a listening socket there (both IP
versions) unless something already listens on the port; a thread accepts (and closes) TCP
connections and records the UDP tokens that arrive.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from vnet.verification import icmp

ANSWERED, REFUSED, SILENT = "answered", "refused", "silent"
ATTEMPTS = 3  # ICMP and UDP requests are sent this many times within the timeout
IP_MTU_DISCOVER, IP_PMTUDISC_PROBE = 10, 3
IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE, IPV6_DONTFRAG = 23, 3, 62
LISTEN_BACKLOG = 4096
_UNREACHABLE = {errno.EHOSTUNREACH: "host unreachable", errno.ENETUNREACH: "network unreachable",
                errno.EACCES: "administratively prohibited"}


@dataclass(frozen=True)
class Request:
    """One probe from inside `namespace` to `address`."""

    namespace: str
    address: str
    proto: str = "icmp"
    port: int = 0
    size: int = 0  # ICMP only: a don't-fragment echo of this many bytes (0: a small echo)
    token: str = ""  # UDP only: the payload the target's listener records


@dataclass(frozen=True)
class Answer:
    state: str  # ANSWERED, REFUSED or SILENT
    rtt_ms: float | None = None
    detail: str = ""  # a send error, or the ICMP error that `hop` sent about the probe
    hop: str = ""  # the address an ICMP error came from (a router, or the source itself)


def raise_fd_limit() -> None:
    """Thousands of probe sockets at once: the soft limit on open files goes up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _family(address: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


SocketKind = tuple[int, int, int]  # (family, type, proto)
# Opens sockets of these kinds inside a namespace ("": where this process is), in order.
Opener = Callable[[str, Sequence[SocketKind]], list[socket.socket]]


def here(_namespace: str, kinds: Sequence[SocketKind]) -> list[socket.socket]:
    """The opener for sockets in this process's own namespace (a guest's engine)."""
    return [socket.socket(family, kind, proto) for family, kind, proto in kinds]


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


@dataclass
class _Pending:
    request: Request
    sent: float = 0.0
    answer: Answer | None = None


class _EchoSocket:
    """A raw ICMP socket of one namespace and IP version; `df`: for MTU probes."""

    def __init__(self, opener: Opener, namespace: str, version: int, df: bool, ident: int) -> None:
        family, proto = (socket.AF_INET, socket.IPPROTO_ICMP) if version == 4 else (
            socket.AF_INET6, socket.IPPROTO_ICMPV6)
        self.sock = opener(namespace, [(family, socket.SOCK_RAW, proto)])[0]
        self.version, self.df, self.ident = version, df, ident
        self.pending: dict[int, _Pending] = {}
        icmp.filter_replies(self.sock, version, errors=True)  # errors: hints (unreachable, MTU)
        if df and version == 4:
            self.sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE)
        elif df:
            self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, IPV6_PMTUDISC_PROBE)
            self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, 1)
        self.sock.setblocking(False)

    def add(self, pending: _Pending) -> None:
        self.pending[len(self.pending) + 1] = pending

    def send(self, now: float) -> None:
        for seq, item in self.pending.items():
            if item.answer is not None:
                continue
            payload = icmp.payload_for(self.version, item.request.size)
            item.sent = item.sent or now
            try:
                self.sock.sendto(icmp.echo_request(self.version, self.ident, seq, payload),
                                 (item.request.address, 0))
            except OSError as exc:
                item.answer = Answer(SILENT, None, _send_error(exc, item.request))

    def receive(self, now: float) -> None:
        while True:
            try:
                data, sender = self.sock.recvfrom(1 << 16)
            except BlockingIOError:
                return
            reply = icmp.parse(self.version, data)
            if reply is None or reply.ident != self.ident or reply.seq not in self.pending:
                continue
            item = self.pending[reply.seq]
            if item.answer is not None:
                continue
            if reply.error:
                item.answer = Answer(SILENT, None, reply.error, sender[0].partition("%")[0])
            elif _same(sender[0], item.request.address):
                item.answer = Answer(ANSWERED, round((now - item.sent) * 1000, 2))


def _same(a: str, b: str) -> bool:
    return ipaddress.ip_address(a.partition("%")[0]) == ipaddress.ip_address(b)


def _send_error(exc: OSError, request: Request) -> str:
    if exc.errno == errno.EMSGSIZE:
        return (f"the kernel refused to send {request.size} bytes unfragmented: the source's interface "
                "towards the target has a smaller MTU")
    if exc.errno == errno.ENOBUFS:
        return ("the host's ARP/ND table is full (shared by every namespace, "
                "net.ipv4.neigh.default.gc_thresh3 entries): other labs or containers use it; "
                "retry, or raise that sysctl")
    return exc.strerror or str(exc)


class _Stream:
    """One TCP connect or UDP exchange; registered with the selector while it waits."""

    def __init__(self, request: Request, sock: socket.socket) -> None:
        self.item = _Pending(request)
        self.sock = sock
        sock.setblocking(False)

    def start(self, now: float) -> None:
        self.item.sent = now
        code = self.sock.connect_ex((self.item.request.address, self.item.request.port))
        if self.item.request.proto == "udp":
            self.send(now)
        elif code not in (0, errno.EINPROGRESS):
            self.finish(code, now)

    def send(self, now: float) -> None:
        if self.item.answer is None:
            try:
                self.sock.send(self.item.request.token.encode() + b"\n")
            except OSError as exc:
                self.finish(exc.errno or 0, now)

    def ready(self, now: float) -> None:
        if self.item.request.proto == "tcp":
            self.finish(self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), now)
            return
        try:
            self.sock.recv(1 << 16)  # an echo, if the listener is not vnet's: keep waiting
        except OSError as exc:
            self.finish(exc.errno or 0, now)

    def finish(self, code: int, now: float) -> None:
        if self.item.answer is not None:
            return
        rtt = round((now - self.item.sent) * 1000, 2)
        if code == 0:
            self.item.answer = Answer(ANSWERED, rtt)
        elif code == errno.ECONNREFUSED:
            self.item.answer = Answer(REFUSED, rtt)
        elif code != errno.EAGAIN:
            self.item.answer = Answer(SILENT, None, _UNREACHABLE.get(code, os.strerror(code)))

    def close(self) -> None:
        with contextlib.suppress(OSError):  # reset, not FIN: no TIME_WAIT in the namespaces
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


def _streams(opener: Opener, requests: Sequence[Request]) -> list[_Stream]:
    by_namespace: dict[str, list[Request]] = {}
    for request in requests:
        by_namespace.setdefault(request.namespace, []).append(request)
    out = []
    for namespace, mine in by_namespace.items():
        kinds = [(_family(r.address), socket.SOCK_STREAM if r.proto == "tcp" else socket.SOCK_DGRAM, 0)
                 for r in mine]
        out += [_Stream(r, s) for r, s in zip(mine, opener(namespace, kinds), strict=True)]
    return out


@dataclass
class _Run:
    """The sockets of one probe run."""

    opener: Opener
    ident: int
    echo: dict[tuple[str, int, bool], _EchoSocket] = field(default_factory=dict)
    streams: list[_Stream] = field(default_factory=list)
    items: dict[Request, _Pending] = field(default_factory=dict)

    def add_echo(self, request: Request) -> None:
        version, df = _version(request.address), request.size > 0
        key = (request.namespace, version, df)
        if key not in self.echo:
            # Every raw ICMP socket of a namespace sees every echo reply: the identifier tells
            # this run's DF sockets from its small-echo sockets (and from other processes').
            ident = (self.ident + df) & 0xFFFF
            self.echo[key] = _EchoSocket(self.opener, request.namespace, version, df, ident)
        pending = _Pending(request)
        self.echo[key].add(pending)
        self.items[request] = pending

    def close(self) -> None:
        for echo in self.echo.values():
            echo.sock.close()
        for stream in self.streams:
            stream.close()


def probe_all(requests: Sequence[Request], timeout: float = 1.5,
              opener: Opener = here) -> dict[Request, Answer]:
    """Send every request at once; each waits at most `timeout` seconds for its answer."""
    raise_fd_limit()
    run = _Run(opener, (os.getpid() << 1) & 0xFFFF)
    selector = selectors.DefaultSelector()
    try:
        for request in dict.fromkeys(requests):
            if request.proto == "icmp":
                run.add_echo(request)
        run.streams = _streams(opener, [r for r in dict.fromkeys(requests) if r.proto != "icmp"])
        run.items.update({s.item.request: s.item for s in run.streams})
        for echo in run.echo.values():
            selector.register(echo.sock, selectors.EVENT_READ, echo)
        for stream in run.streams:
            kind = selectors.EVENT_WRITE if stream.item.request.proto == "tcp" else selectors.EVENT_READ
            selector.register(stream.sock, kind, stream)
        _loop(run, selector, timeout)
    finally:
        selector.close()
        run.close()
    return {r: run.items[r].answer or Answer(SILENT) for r in requests}


def _loop(run: _Run, selector: selectors.BaseSelector, timeout: float) -> None:
    start = time.monotonic()
    deadline = start + timeout
    for stream in run.streams:
        stream.start(start)
    for attempt in range(ATTEMPTS):
        now = time.monotonic()
        for echo in run.echo.values():
            echo.send(now)
        if attempt:
            for stream in run.streams:
                if stream.item.request.proto == "udp":
                    stream.send(now)
        until = deadline if attempt == ATTEMPTS - 1 else start + timeout * (attempt + 1) / ATTEMPTS
        while (left := until - time.monotonic()) > 0 and not _settled(run):
            for key, _ in selector.select(left):
                handler = key.data
                now = time.monotonic()
                if isinstance(handler, _EchoSocket):
                    handler.receive(now)
                else:
                    handler.ready(now)
                    if handler.item.answer is not None:
                        selector.unregister(handler.sock)
        if _settled(run):
            return


def _settled(run: _Run) -> bool:
    """Nothing left to wait for: UDP never settles early (only refusals come back to it)."""
    return all(item.answer is not None for item in run.items.values() if item.request.proto != "udp")\
        and not any(s.item.request.proto == "udp" and s.item.answer is None for s in run.streams)


# --- listeners ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Listen:
    """A listener vnet runs: `proto` on `port` in `namespace`, for these IP versions."""

    namespace: str
    proto: str
    port: int
    versions: tuple[int, ...]


class Listeners:
    """The listening sockets of one verify run, served by one thread until `close`."""

    def __init__(self, wanted: Iterable[Listen], opener: Opener = here, record: str | None = None) -> None:
        self.opener, self.record = opener, record  # `record`: a file each token is appended to
        self.selector = selectors.DefaultSelector()
        self.tokens: set[str] = set()
        self.taken: list[str] = []  # ports something else already listens on (it answers instead)
        self._lock = threading.Lock()
        self._stop = False
        for listen in wanted:
            self._open(listen)
        self._thread = threading.Thread(target=self._serve, name="vnet-listeners", daemon=True)
        self._thread.start()

    def _open(self, listen: Listen) -> None:
        kind = socket.SOCK_STREAM if listen.proto == "tcp" else socket.SOCK_DGRAM
        families = [(socket.AF_INET if v == 4 else socket.AF_INET6, kind, 0) for v in listen.versions]
        for version, sock in zip(listen.versions, self.opener(listen.namespace, families), strict=True):
            try:
                if version == 6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if kind == socket.SOCK_STREAM:  # an earlier run's closed connections wait in TIME_WAIT
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("::" if version == 6 else "0.0.0.0", listen.port))
                if kind == socket.SOCK_STREAM:
                    sock.listen(LISTEN_BACKLOG)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRINUSE:
                    self.taken.append(f"{listen.proto}/{listen.port} in {listen.namespace}")
                continue  # EADDRNOTAVAIL: IPv6 is off there; nothing to listen on
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, kind)

    def _serve(self) -> None:
        while not self._stop:
            for key, _ in self.selector.select(0.1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                with contextlib.suppress(OSError):
                    if key.data == socket.SOCK_STREAM:
                        sock.accept()[0].close()
                    else:
                        token = sock.recv(1 << 16).decode(errors="replace").strip()
                        with self._lock:
                            self.tokens.add(token)
                        if self.record is not None:
                            with open(self.record, "a") as handle:
                                handle.write(token + "\n")

    def received(self) -> set[str]:
        """The UDP tokens that arrived so far."""
        with self._lock:
            return set(self.tokens)

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        for key in list(self.selector.get_map().values()):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            sock.close()
        self.selector.close()


@contextlib.contextmanager
def listening(wanted: Iterable[Listen], opener: Opener = here) -> Iterator[Listeners]:
    listeners = Listeners(wanted, opener)
    try:
        yield listeners
    finally:
        listeners.close()


# --- as a script inside a guest (python3, no vnet installed) ----------------------------------


def main(argv: Sequence[str]) -> None:
    """`probe TIMEOUT REQUESTS` prints the answers to REQUESTS (JSON) as JSON;
    `listen RECORD LISTENS` serves LISTENS (JSON) until SIGTERM, appending UDP tokens to RECORD."""
    if argv[0] == "probe":
        requests = [Request("", **item) for item in json.loads(argv[2])]
        answers = probe_all(requests, float(argv[1]))
        json.dump([vars(answers[r]) for r in requests], sys.stdout)
        return
    wanted = [Listen("", item["proto"], item["port"], tuple(item["versions"]))
              for item in json.loads(argv[2])]
    listeners = Listeners(wanted, record=argv[1])

    def stop(*_: object) -> None:
        listeners.close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    while True:
        signal.pause()

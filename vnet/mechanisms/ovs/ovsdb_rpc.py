"""A small OVSDB JSON-RPC client for reads: `get_schema` and `transact` with `select` operations.

Why not the IDL for reading: the Python IDL parses every message with `ovs.json`, a pure-Python
parser (the PyPI `ovs` wheel has no C extension), and turns every row into Python objects. For
the 1000 Port/Interface rows of a 500-port lab that was ~0.5-0.65 s of a no-op plan, and the
schema fetch another round of it. Here the transport is still the `ovs` library's Stream (unix,
tcp and ssl remotes, as the IDL supports them) and messages are parsed by the standard
library's json module (C): one `transact` of a few selects takes a few milliseconds. Writes
still go through ovsdbapp (vnet/mechanisms/ovs/driver.py), whose IDL is only started when there is
something to write.

Values come back in OVSDB's JSON notation (RFC 7047 §5.1); `atoms`, `mapping` and `scalar`
turn them into Python values.
"""

from __future__ import annotations

import codecs
import errno
import json
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ovs.stream

JSONValue = Any  # a decoded JSON value
Row = dict[str, JSONValue]


class OvsdbRpcError(Exception):
    """The server could not be reached, or answered with an error."""


def _connect(remote: str, timeout: float) -> ovs.stream.Stream:
    import ovs.stream  # noqa: PLC0415 (~15 ms with ssl and logging: only when an OVSDB answers)

    problems = []
    for name in (part.strip() for part in remote.split(",")):
        error, stream = ovs.stream.Stream.open_block(ovs.stream.Stream.open(name), int(timeout * 1000))
        if not error:
            return stream
        problems.append(f"{name}: {os.strerror(error)}")
    raise OvsdbRpcError("; ".join(problems) or f"no remote in {remote!r}")


class OvsdbReader:
    """One connection to an ovsdb-server, for read requests answered in order."""

    def __init__(self, remote: str, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._stream = _connect(remote, timeout)
        self._buffer = ""
        self._decoder = json.JSONDecoder()
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._id = 0

    def close(self) -> None:
        self._stream.close()

    def request(self, method: str, params: list[JSONValue]) -> JSONValue:
        """Send one request and return its result (notifications in between are skipped)."""
        self._id += 1
        deadline = time.monotonic() + self.timeout
        self._send(json.dumps({"method": method, "params": params, "id": self._id}).encode(), deadline)
        while True:
            reply = self._message(deadline)
            if reply.get("method") == "echo":  # the server's inactivity probe: answer it
                self._send(json.dumps({"result": reply.get("params"), "id": reply.get("id")}).encode(),
                           deadline)
                continue
            if reply.get("id") != self._id or "method" in reply:
                continue
            if reply.get("error") is not None:
                raise OvsdbRpcError(f"{method}: {reply['error']}")
            return reply.get("result")

    def get_schema(self, database: str) -> dict[str, JSONValue]:
        schema: dict[str, JSONValue] = self.request("get_schema", [database])
        return schema

    def select(self, database: str, selects: list[dict[str, JSONValue]]) -> list[list[Row]]:
        """One transaction of `select` operations ({"table", "where", "columns"}): rows of each."""
        ops = [{"op": "select", "where": [], **spec} for spec in selects]
        results = self.request("transact", [database, *ops])
        out = []
        for spec, result in zip(selects, results, strict=False):
            if "error" in result:
                why = f"{result['error']}: {result.get('details')}"
                raise OvsdbRpcError(f"select from {spec['table']}: {why}")
            out.append(result["rows"])
        return out

    # -- transport -----------------------------------------------------------------------------

    def _wait(self, deadline: float, send: bool) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OvsdbRpcError(f"no answer from OVSDB within {self.timeout} s")
        import ovs.poller  # noqa: PLC0415 (as ovs.stream, in _connect)

        poller = ovs.poller.Poller()
        (self._stream.send_wait if send else self._stream.recv_wait)(poller)
        poller.timer_wait(int(remaining * 1000))
        poller.block()

    def _send(self, data: bytes, deadline: float) -> None:
        while data:
            sent = self._stream.send(data)
            if sent == -errno.EAGAIN:
                self._wait(deadline, send=True)
            elif sent < 0:
                raise OvsdbRpcError(f"send to OVSDB: {os.strerror(-sent)}")
            else:
                data = data[sent:]

    def _message(self, deadline: float) -> dict[str, JSONValue]:
        """The next complete JSON-RPC message (ovsdb-server sends them back to back)."""
        while True:
            text = self._buffer.lstrip()
            if text:
                try:
                    message, end = self._decoder.raw_decode(text)
                except json.JSONDecodeError:
                    pass  # incomplete: read more
                else:
                    self._buffer = text[end:]
                    if isinstance(message, dict):
                        return message
                    continue
            error, chunk = self._stream.recv(1 << 20)
            if error == errno.EAGAIN:
                self._wait(deadline, send=False)
            elif error:
                raise OvsdbRpcError(f"receive from OVSDB: {os.strerror(error)}")
            elif not chunk:
                raise OvsdbRpcError("OVSDB closed the connection")
            else:
                self._buffer = text + self._utf8.decode(chunk)


# -- OVSDB JSON notation -> Python ----------------------------------------------------------------

def _atom(value: JSONValue) -> JSONValue:
    """An atom: ["uuid", "…"] and ["named-uuid", "…"] become the string; others stay."""
    if isinstance(value, list) and len(value) == 2 and value[0] in ("uuid", "named-uuid"):
        return value[1]
    return value


def atoms(value: JSONValue) -> list[JSONValue]:
    """A set column (["set", [...]] or one bare atom) as a list."""
    if isinstance(value, list) and len(value) == 2 and value[0] == "set":
        return [_atom(v) for v in value[1]]
    return [_atom(value)]


def scalar(value: JSONValue) -> JSONValue:
    """An optional column (a set of 0 or 1 atoms): the atom, or None."""
    found = atoms(value)
    return found[0] if found else None


def mapping(value: JSONValue) -> dict[JSONValue, JSONValue]:
    """A map column (["map", [[k, v], ...]])."""
    return {_atom(k): _atom(v) for k, v in value[1]}


def python(value: JSONValue) -> JSONValue:
    """Any column value: a map as a dict, a set as a list, a uuid as its string, else the atom."""
    if isinstance(value, list) and len(value) == 2:
        if value[0] == "map":
            return mapping(value)
        if value[0] == "set":
            return atoms(value)
        return _atom(value)
    return value

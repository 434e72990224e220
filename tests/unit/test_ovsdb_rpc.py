"""The OVSDB read client: JSON-RPC framing over a stream, OVSDB notation -> Python."""

from __future__ import annotations

import codecs
import errno
import json

import ovs.poller
import pytest

from vnet.mechanisms.ovs.ovsdb_rpc import OvsdbReader, OvsdbRpcError, atoms, mapping, python, scalar


class FakeStream:
    """Hands out prepared chunks (EAGAIN between them); records what was sent."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, n: int) -> tuple[int, bytes]:
        if not self.chunks:
            return 0, b""  # closed
        chunk = self.chunks.pop(0)
        return (errno.EAGAIN, b"") if chunk == b"" else (0, chunk)

    def recv_wait(self, poller: object) -> None:
        pass

    def close(self) -> None:
        pass


def reader(chunks: list[bytes]) -> tuple[OvsdbReader, FakeStream]:
    stream = FakeStream(chunks)
    client = OvsdbReader.__new__(OvsdbReader)
    client.timeout = 5.0
    client._stream = stream
    client._buffer = ""
    client._decoder = json.JSONDecoder()
    client._utf8 = codecs.getincrementaldecoder("utf-8")()
    client._id = 0
    return client, stream


def test_replies_split_anywhere_and_echo_probes_are_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ovs.poller.Poller, "block", lambda self: None)
    result = {"tables": {"Port": {}}, "name": "Open_vSwitch", "note": "café"}
    body = json.dumps({"id": 1, "result": result, "error": None}, ensure_ascii=False).encode()
    echo = json.dumps({"method": "echo", "params": [], "id": "echo"}).encode()
    cut = body.index("é".encode()) + 1  # inside a two-byte UTF-8 sequence
    client, stream = reader([echo + body[:cut], b"", body[cut:]])
    assert client.get_schema("Open_vSwitch") == result
    assert json.loads(stream.sent[0])["method"] == "get_schema"
    assert json.loads(stream.sent[1]) == {"result": [], "id": "echo"}


def test_select_errors_and_a_closed_connection_raise() -> None:
    failed = json.dumps({"id": 1, "result": [{"error": "syntax error", "details": "no such table"}],
                         "error": None}).encode()
    client, _ = reader([failed])
    with pytest.raises(OvsdbRpcError, match="select from Nope: syntax error"):
        client.select("Open_vSwitch", [{"table": "Nope"}])
    client, _ = reader([])
    with pytest.raises(OvsdbRpcError, match="closed"):
        client.get_schema("Open_vSwitch")


def test_ovsdb_notation() -> None:
    assert atoms(["set", [1, 2]]) == [1, 2] and atoms(7) == [7] and atoms(["set", []]) == []
    assert atoms(["uuid", "u1"]) == ["u1"] and atoms(["set", [["uuid", "a"], ["uuid", "b"]]]) == ["a", "b"]
    assert scalar(["set", []]) is None and scalar("standalone") == "standalone"
    assert mapping(["map", [["vnet-lab", "x"], ["k", "v"]]]) == {"vnet-lab": "x", "k": "v"}
    assert python(["map", []]) == {} and python(["set", [10]]) == [10] and python(["uuid", "u"]) == "u"
    assert python("name") == "name" and python(True) is True

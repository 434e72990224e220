"""verify's probe machinery without a host: ICMP messages, the guest scripts and their answers,
vnet's engine as the python3 program disk guests run, and what trace reads from vswitchd."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys

import pytest

from vnet.mechanisms.ovs import openflow
from vnet.mechanisms.ovs import unixctl as ovs_unixctl
from vnet.verification import engine, guests, icmp
from vnet.verification.sends import Listening, Send


def _ipv4(protocol: int, payload: bytes, source: bytes = bytes([198, 18, 0, 254])) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, protocol, 0, source,
                       bytes([198, 18, 0, 1])) + payload


def test_echo_round_trip_and_sizes() -> None:
    request = icmp.echo_request(4, 0x1234, 7, icmp.payload_for(4, 1500))
    assert len(request) + 20 == 1500  # the IP packet is exactly the probe size
    assert len(icmp.echo_request(6, 1, 1, icmp.payload_for(6, 1280))) + 40 == 1280
    reply = bytearray(request)
    reply[0] = icmp.ECHO_REPLY[4]
    assert icmp.parse(4, _ipv4(socket.IPPROTO_ICMP, bytes(reply))) == icmp.Reply(0x1234, 7)


def test_fragmentation_needed_names_the_next_hop_mtu() -> None:
    inner = _ipv4(socket.IPPROTO_ICMP, icmp.echo_request(4, 0x42, 9))[:28]  # IP header + 8 bytes
    error = struct.pack("!BBHHH", 3, 4, 0, 0, 1400) + inner
    assert icmp.parse(4, _ipv4(socket.IPPROTO_ICMP, error)) == icmp.Reply(
        0x42, 9, "fragmentation needed, next-hop MTU 1400")
    unreachable = struct.pack("!BBHHH", 3, 1, 0, 0, 0) + inner
    assert icmp.parse(4, _ipv4(socket.IPPROTO_ICMP, unreachable)).error == "host unreachable"  # type: ignore[union-attr]


def test_packet_too_big_over_ipv6() -> None:
    inner = struct.pack("!IHBB16s16s", 0x60000000, 8, socket.IPPROTO_ICMPV6, 64, b"\0" * 16, b"\0" * 16)
    inner += icmp.echo_request(6, 5, 6)[:8]
    message = struct.pack("!BBHI", icmp.PACKET_TOO_BIG_V6, 0, 0, 1280) + inner
    assert icmp.parse(6, message) == icmp.Reply(5, 6, "packet too big, MTU 1280")
    # An error about someone else's packet (not an echo request) is not ours.
    assert icmp.parse(6, struct.pack("!BBHI", 2, 0, 0, 1280) + inner[:40] + b"\x81" + b"\0" * 7) is None


@pytest.mark.parametrize(("timeout", "seconds"), [(0.3, 1), (1.5, 2), (4.0, 4)])
def test_guest_probes_are_bounded_by_the_timeout(timeout: float, seconds: int) -> None:
    """BusyBox takes whole seconds: every tool gets the timeout rounded up, never its default
    (ping's -W is 10 s: an isolated pair took 10 s, a failing one ~31 s)."""
    sends = [Send("vm1", "198.18.0.2"), Send("vm1", "fd00::2", size=1500),
             Send("vm1", "198.18.0.2", "tcp", 80), Send("vm1", "198.18.0.2", "udp", 53, token="t")]
    script = guests.tiny_probe_script(sends, timeout)
    assert f"ping -c 1 -W {seconds} -w {seconds} 198.18.0.2" in script
    assert f"ping6 -c 1 -W {seconds} -w {seconds} -s 1452 fd00::2" in script
    assert f"nc -w {seconds} 198.18.0.2 80" in script
    assert f"nc.openbsd -n -u -q {seconds} -w {seconds} 198.18.0.2 53" in script
    assert f"-w {seconds} -p 52 198.18.0.2" in script  # traceroute's probe lands on port 53
    assert sum(line.endswith(" &") for line in script.splitlines()) == 4 and script.endswith("wait")


def test_guest_answers_are_read_from_the_tools_output() -> None:
    ping = Send("vm1", "198.18.0.2")
    assert guests._tiny_answer(ping, 0, "64 bytes from 198.18.0.2: seq=0 ttl=64 time=1.25 ms") == (
        engine.Answer(engine.ANSWERED, 1.25))
    assert guests._tiny_answer(ping, 1, "1 packets transmitted, 0 packets received").state == engine.SILENT
    tcp = Send("vm1", "198.18.0.2", "tcp", 7)
    assert guests._tiny_answer(tcp, 1, "nc: can't connect to remote host (198.18.0.2): Connection "
                                       "refused").state == engine.REFUSED
    assert guests._tiny_answer(tcp, 1, "nc: timed out").state == engine.SILENT
    udp = Send("vm1", "198.18.0.2", "udp", 7, token="t")
    refused = "traceroute to 198.18.0.2 (198.18.0.2), 64 hops max, 46 byte packets\n64  198.18.0.2  1.7 ms"
    assert guests._tiny_answer(udp, 0, refused).state == engine.REFUSED
    assert guests._tiny_answer(udp, 0, "traceroute to 198.18.0.2\n64  *").state == engine.SILENT


def test_guest_listeners_raise_the_backlog_and_log_udp() -> None:
    script = guests.tiny_listen_script("r1", [Listening("vm1", "tcp", 7, (4, 6)),
                                              Listening("vm1", "udp", 53, (4, 6))])
    assert f"nc -{'l' * guests.TCP_BACKLOG} -p 7 -e /bin/true" in script
    assert "nc.openbsd -4 -u -l -k 53" in script and "nc.openbsd -6 -u -l -k 53" in script
    assert "setsid" in script and "netstat -lnu" in script


def test_the_engine_runs_as_a_python3_program_in_this_namespace() -> None:
    """What a disk guest runs (no vnet installed): the engine and ICMP codec as one program."""
    request = [{"address": "127.0.0.1", "proto": "tcp", "port": 9, "size": 0, "token": ""}]
    done = subprocess.run([sys.executable, "-I", "-c", guests.engine_program(), "probe", "0.5",
                           json.dumps(request)], capture_output=True, text=True, check=True)
    answers = json.loads(done.stdout)
    assert answers[0]["state"] == engine.REFUSED  # nothing listens on the discard port here
    assert guests._python_answers([Send("vm", "127.0.0.1", "tcp", 9)], done.stdout)[
        Send("vm", "127.0.0.1", "tcp", 9)].state == engine.REFUSED


TRACE = """Flow: tcp,in_port=1,vlan_tci=0x0000,dl_src=7a:52:27:ff:a4:97,nw_src=198.18.70.1

bridge("fl-a")
--------------
 0. priority 0
    NORMAL
     -> forwarding to learned port

bridge("fl-b")
--------------
 0. tcp,nw_dst=198.18.70.2, priority 100
    drop

Final flow: unchanged
Megaflow: recirc_id=0,eth,tcp,in_port=1,nw_frag=no
Datapath actions: drop
"""


def test_ofproto_trace_drops_are_attributed_to_the_bridge_that_holds_the_rule() -> None:
    result = ovs_unixctl.parse_trace(TRACE)
    assert [s.bridge for s in result.sections] == ["fl-a", "fl-b"]
    first, second = result.sections
    assert first.dropped_by is None and first.notes == ("forwarding to learned port",)
    assert second.dropped_by == ovs_unixctl.Rule(0, "tcp,nw_dst=198.18.70.2", 100, ("drop",))
    assert str(second.dropped_by) == "table 0, priority 100, tcp,nw_dst=198.18.70.2: drop"
    assert result.datapath_actions == "drop"


def test_flows_are_compared_without_counters_or_hidden_tables() -> None:
    line = "duration=7s, n_packets=11, n_bytes=906, priority=0,actions=NORMAL"
    assert ovs_unixctl.normalize_flow(line) == "priority=0,actions=NORMAL"
    assert ovs_unixctl.normalize_flow("table_id=254, duration=0s, n_packets=0, n_bytes=0, "
                                      "priority=2,recirc_id=0,actions=drop") is None
    assert ovs_unixctl.normalize_flow("table_id=3, duration=1s, n_packets=0, n_bytes=0, "
                                      "priority=5,ip,actions=drop") == "table=3,priority=5,ip,actions=drop"
    assert ovs_unixctl.name_ports("push_vlan(vid=10,pcp=0),4,set(tunnel(id=0x5)),3", {3: "a", 4: "b"}) == (
        "push_vlan(vid=10,pcp=0),b,set(tunnel(id=0x5)),a")


def test_openflow_messages() -> None:
    delete = openflow._flow_mod(openflow.OFPFC_DELETE, 0, b"")
    assert len(delete) == 40 + 24  # ofp_match + the rest of ofp_flow_mod (OpenFlow 1.0)
    assert struct.unpack_from("!I", delete)[0] == openflow.OFPFW_ALL
    message = openflow._message(openflow.OFPT_FLOW_MOD, 2, delete)
    assert struct.unpack_from("!BBHI", message) == (1, 14, 8 + len(delete), 2)

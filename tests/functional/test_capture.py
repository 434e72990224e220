"""`vnet capture` on a real kernel: two namespaces on a Linux bridge, ping between them, and the
pcapng file read back with dpkt (tests/pcapnglib.py). Directions, `--both`, `-w -` to a pipe,
--duration, Ctrl-C, the VLAN tag the kernel strips (PACKET_AUXDATA) put back, and the exit
codes of wrong names (65) and a lab not applied (69).

IPv6 is turned off in the nodes for the test (vnet's host ends have none already): a node's
router solicitations and MLD reports would otherwise fall among the few packets counted.
"""

from __future__ import annotations

import fcntl
import io
import os
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pcapnglib import INBOUND, OUTBOUND, PING, finish, icmp, read, start

from vnet import api
from vnet.errors import EX_DATAERR, EX_UNAVAILABLE
from vnet.interrupt import Interrupt
from vnet.mechanisms.kernel.compile import tap_name
from vnet.topology import load

from .conftest import Labs
from .hostlib import VNET, LabUnderTest, run

pytestmark = pytest.mark.root

LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
  t1: {kind: tap}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.87.1/24}
  - {endpoints: [h2:eth0, $b1], ip: 198.18.87.2/24}
  - {endpoints: [t1:eth0, $b1]}
"""
H1, H2 = bytes([198, 18, 87, 1]), bytes([198, 18, 87, 2])


@pytest.fixture
def lab(labs: Labs) -> tuple[LabUnderTest, Path]:
    made = labs.new("cap")
    path = made.write(LAB)
    run(VNET, "apply", str(path))
    for node in ("h1", "h2"):
        run("ip", "netns", "exec", made.namespace(node), "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
    ping(made, count=1)  # ARP resolved: the packets counted below are the pings
    return made, path




def ping(lab: LabUnderTest, count: int = 3) -> None:
    run("ip", "netns", "exec", lab.namespace("h1"), *PING, "-c", str(count), "-i", "0.2", "-W", "2",
        "198.18.87.2")


def test_ping_request_is_outbound_and_reply_inbound(lab: tuple[LabUnderTest, Path], tmp_path: Path) -> None:
    made, path = lab
    out = tmp_path / "out.pcapng"
    proc = start(str(path), "h1:eth0", "-w", str(out), "-c", "4")
    ping(made)
    err = finish(proc)
    assert err.splitlines()[-1] == b"4 packets captured on 1 interfaces, 0 dropped by the kernel"
    found = read(out.read_bytes())
    assert found.interfaces == [f"h1:eth0 ({made.namespace('h1')}/eth0)"]
    assert len(found.packets) == 4
    assert set(icmp(found, 0, 8)) == {(OUTBOUND, H1, H2)}
    assert set(icmp(found, 0, 0)) == {(INBOUND, H2, H1)}
    received, dropped = found.statistics[0]
    assert received >= 4 and dropped == 0
    times = [p.ns for p in found.packets]
    assert times == sorted(times) and abs(times[0] / 1e9 - time.time()) < 60  # ns since the epoch


def test_both_ends_hold_the_same_packets_in_opposite_directions(lab: tuple[LabUnderTest, Path],
                                                                tmp_path: Path) -> None:
    made, path = lab
    out = tmp_path / "both.pcapng"
    proc = start(str(path), "h1:eth0", "--both", "-w", str(out), "-c", "8")
    ping(made)
    finish(proc)
    found = read(out.read_bytes())
    assert found.interfaces == [f"h1:eth0 ({made.namespace('h1')}/eth0)",
                                f"h1:eth0 ({made.host_end('h1', 'eth0')})"]
    assert set(icmp(found, 0, 8)) == {(OUTBOUND, H1, H2)} and set(icmp(found, 1, 8)) == {(INBOUND, H1, H2)}
    assert set(icmp(found, 0, 0)) == {(INBOUND, H2, H1)} and set(icmp(found, 1, 0)) == {(OUTBOUND, H2, H1)}
    inside = [p.data for p in found.packets if p.interface == 0]
    outside = [p.data for p in found.packets if p.interface == 1]
    assert inside == outside  # the same frames, byte for byte
    assert set(found.statistics) == {0, 1}


def test_stdout_streams_a_readable_pcapng(lab: tuple[LabUnderTest, Path]) -> None:
    made, path = lab
    proc = start(str(path), "h1:eth0", "-w", "-", "-c", "2", stdout=subprocess.PIPE)
    ping(made)
    assert proc.stdout is not None
    data = proc.stdout.read()
    finish(proc)
    found = read(data)
    assert len(found.packets) == 2 and icmp(found, 0, 8) and found.statistics[0][0] >= 2


def test_stdout_is_flushed_per_packet(lab: tuple[LabUnderTest, Path]) -> None:
    """A reader of the pipe (Wireshark) has each packet while the capture still runs."""
    made, path = lab
    proc = start(str(path), "h1:eth0", "-w", "-", stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ping(made, count=1)
    data, deadline = b"", time.monotonic() + 10
    while b"\x06\x00\x00\x00" not in data[28:] and time.monotonic() < deadline:  # an EPB's type
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            data += os.read(proc.stdout.fileno(), 65536)
    assert b"\x06\x00\x00\x00" in data[28:], f"no packet on the pipe while capturing: {data!r}"
    assert proc.poll() is None, "the capture ended by itself"
    proc.send_signal(signal.SIGINT)
    data += proc.stdout.read()
    finish(proc)
    found = read(data)
    assert icmp(found, 0, 8) and set(found.statistics) == {0}


def test_lines_without_a_file(lab: tuple[LabUnderTest, Path]) -> None:
    made, path = lab
    proc = start(str(path), "h1:eth0", "-c", "2", stdout=subprocess.PIPE)
    ping(made)
    assert proc.stdout is not None
    lines = proc.stdout.read().decode().splitlines()
    finish(proc)
    assert len(lines) == 2, lines
    assert "out" in lines[0].split() and lines[0].endswith("IPv4 198.18.87.1 > 198.18.87.2 ICMP"), lines
    assert "in" in lines[1].split() and lines[1].endswith("IPv4 198.18.87.2 > 198.18.87.1 ICMP"), lines


def test_duration_and_ctrl_c_end_it_with_a_complete_file(lab: tuple[LabUnderTest, Path],
                                                         tmp_path: Path) -> None:
    _, path = lab
    timed = tmp_path / "timed.pcapng"
    began = time.monotonic()
    finish(start(str(path), "h1:eth0", "h2:eth0", "-w", str(timed), "--duration", "1"))
    assert 1 <= time.monotonic() - began < 10
    found = read(timed.read_bytes())
    assert len(found.interfaces) == 2 and set(found.statistics) == {0, 1}  # complete: both ISBs
    stopped = tmp_path / "stopped.pcapng"
    proc = start(str(path), "h1:eth0", "-w", str(stopped))
    proc.send_signal(signal.SIGINT)
    err = finish(proc)
    assert err.splitlines()[-1].endswith(b"on 1 interfaces, 0 dropped by the kernel"), err
    assert set(read(stopped.read_bytes()).statistics) == {0}


SEND_TAGGED = """
import socket, struct, sys
frame = (b"\\xff" * 6 + bytes.fromhex("020000000001") + struct.pack("!HH", 0x8100, 42)
         + struct.pack("!H", 0x88B5) + b"vnet-capture-vlan-test".ljust(46, b"."))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(3):
    s.send(frame)
"""


def test_a_stripped_vlan_tag_is_put_back(lab: tuple[LabUnderTest, Path], tmp_path: Path) -> None:
    """A tagged frame sent from h1: on the way out of h1 the tag is in the frame's data; h1's
    host end receives it and the kernel's receive path strips it into the packet's metadata
    (PACKET_AUXDATA), and so it stays through the bridge to h2's host end and into h2. The file
    must hold the tag on every interface (--both: both ends of h1:eth0 and of h2:eth0)."""
    made, path = lab
    out = tmp_path / "vlan.pcapng"
    proc = start(str(path), "h1:eth0", "--both", "h2:eth0", "-w", str(out), "--duration", "2")
    run("ip", "netns", "exec", made.namespace("h1"), sys.executable, "-c", SEND_TAGGED)
    finish(proc)
    found = read(out.read_bytes())
    ours = [p for p in found.packets if b"vnet-capture-vlan-test" in p.data]
    assert {p.interface for p in ours} == {0, 1, 2, 3}, found.packets
    for packet in ours:
        tag = packet.data[12:18]
        assert tag == struct.pack("!HHH", 0x8100, 42, 0x88B5), (packet.interface, packet.data[:20])
        assert packet.eth.vlan_tags[0].id == 42
        assert packet.length == len(packet.data) == 64


def test_a_tap_node_is_captured_on_its_tap(lab: tuple[LabUnderTest, Path], tmp_path: Path) -> None:
    made, path = lab
    out = tmp_path / "tap.pcapng"
    finish(start(str(path), "t1:eth0", "h1:eth0", "-w", str(out), "--duration", "0.5"))
    tap = tap_name(made.name, "t1", "eth0")
    h1 = f"h1:eth0 ({made.namespace('h1')}/eth0)"
    assert read(out.read_bytes()).interfaces == [f"t1:eth0 ({tap})", h1]
    done = run(VNET, "capture", str(path), "t1:eth0", "--both", "-c", "1", check=False)
    assert done.returncode == EX_DATAERR and "no other end" in done.stderr, done


TUNSETIFF = 0x400454CA
TAP_FLAGS = 0x0002 | 0x1000 | 0x0100  # IFF_TAP, IFF_NO_PI, IFF_MULTI_QUEUE: what a guest attaches with
FROM_GUEST = (b"\xff" * 6 + bytes.fromhex("020000000009") + struct.pack("!H", 0x88B5)
              + b"vnet-capture-from-guest".ljust(46, b"."))
TO_GUEST = """
import socket, struct
frame = (b"\\xff" * 6 + bytes.fromhex("020000000001") + struct.pack("!H", 0x88B5)
         + b"vnet-capture-to-guest".ljust(46, b"."))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("eth0", 0))
for _ in range(3):
    s.send(frame)
"""


def test_a_tap_gives_directions_as_its_guest_sees_them(lab: tuple[LabUnderTest, Path],
                                                       tmp_path: Path) -> None:
    """A "guest" attached to t1's TAP (its file descriptor, as QEMU holds it) sends a frame and
    h1 sends one to it: on t1:eth0 the guest's frame is out and h1's in, as inside the guest
    (the TAP's own view is the opposite), and on h1:eth0 the other way round."""
    made, path = lab
    tap = tap_name(made.name, "t1", "eth0")
    flags = int(Path(f"/sys/class/net/{tap}/tun_flags").read_text(), 16) & TAP_FLAGS
    guest = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(guest, TUNSETIFF, struct.pack("16sH", tap.encode(), flags))
        out = tmp_path / "guest.pcapng"
        proc = start(str(path), "t1:eth0", "h1:eth0", "-w", str(out), "--duration", "2")
        for _ in range(3):
            os.write(guest, FROM_GUEST)
        run("ip", "netns", "exec", made.namespace("h1"), sys.executable, "-c", TO_GUEST)
        finish(proc)
    finally:
        os.close(guest)
    found = read(out.read_bytes())
    ways = {(p.interface, p.direction, b"from-guest" in p.data) for p in found.packets
            if b"vnet-capture-" in p.data}
    assert ways == {(0, OUTBOUND, True), (0, INBOUND, False), (1, INBOUND, True), (1, OUTBOUND, False)}, ways


def test_ctrl_c_keeps_what_the_kernel_had_captured(lab: tuple[LabUnderTest, Path]) -> None:
    """Interrupted before the loop reads anything: the frames already queued on the socket are
    written all the same (as after a Ctrl-C that comes right after the traffic)."""
    made, path = lab
    pressed = Interrupt()

    def send_then_interrupt(_targets: object) -> None:
        run("ip", "netns", "exec", made.namespace("h1"), sys.executable, "-c", SEND_TAGGED)
        pressed.press()

    out = io.BytesIO()
    summary = api.capture(load(str(path)), ["h1:eth0"], out, interrupt=pressed, ready=send_then_interrupt)
    sent = [p for p in read(out.getvalue()).packets if b"vnet-capture-vlan-test" in p.data]
    assert len(sent) == 3 and summary.packets >= 3, (summary, sent)
    assert all(p.direction == OUTBOUND for p in sent)


def test_a_device_removed_meanwhile_ends_its_interface_only(lab: tuple[LabUnderTest, Path],
                                                            tmp_path: Path) -> None:
    made, path = lab
    out = tmp_path / "gone.pcapng"
    proc = start(str(path), "h1:eth0", "h2:eth0", "-w", str(out), "--duration", "2")
    run("ip", "link", "del", made.host_end("h2", "eth0"))  # takes h2's eth0 with it (a veth pair)
    err = finish(proc)
    assert b"note: h2:eth0 (" in err and b"went down or away" in err, err
    assert set(read(out.read_bytes()).statistics) == {0, 1}  # complete all the same


def test_wrong_names_are_65_and_a_lab_not_applied_is_69(labs: Labs, tmp_path: Path) -> None:
    applied = labs.new("cap")
    path = applied.write(LAB)
    for target, said in (("h1:eth9", b"has no interface `eth9`"), ("h9:eth0", b"is not a node"),
                         ("h1", b"names no interface")):
        done = run(VNET, "capture", str(path), target, "-c", "1", check=False)
        assert done.returncode == EX_DATAERR, done
        assert said.decode() in done.stderr and "hint:" in done.stderr, done.stderr
    out = tmp_path / "x.pcapng"
    done = run(VNET, "capture", str(path), "h1:eth0", "-c", "1", "-w", str(out), check=False)
    assert done.returncode == EX_UNAVAILABLE, done
    assert "is not on this host" in done.stderr and "vnet apply" in done.stderr, done.stderr
    assert not out.exists()  # refused before a file was made

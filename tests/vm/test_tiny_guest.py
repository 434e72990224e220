"""Boot the real tiny image under QEMU (TCG) and check the guest's configuration and agent from inside.

One guest (vm1) is shared by most tests of this module; it has two NICs whose MACs are given in
the opposite order of their PCI slots, so the names prove renaming by MAC. Two more guests on a
`-netdev dgram` segment ping each other. Boot time and QEMU's resident memory are printed (-s).
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator

import pytest
from hanglib import returns

from vnet.vm.agent import AgentError, GuestAgent
from vnet.vm.tiny import GuestConfig, GuestNic, TinyImage

from .conftest import Guest, Guests

pytestmark = pytest.mark.root

VM1 = GuestConfig(
    hostname="vm1",
    # PCI order: the kernel first calls ...:01 eth0 and ...:02 eth1, so both must be renamed
    nics=(GuestNic("52:54:00:5e:00:01", "lan1"), GuestNic("52:54:00:5e:00:02", "eth0", 1400)),
    addresses=(("eth0", "198.18.10.1/24"), ("eth0", "fd00:10::1/64"), ("lan1", "198.18.11.1/24")),
    routes=(("default", "198.18.10.254"), ("fd00:99::/64", "fd00:10::fe"), ("198.19.0.0/16", "198.18.11.9")),
    forwarding=True)
# words that /init must ignore without harm (QEMU passes -append verbatim: no shell involved)
JUNK = ("vnet.nic=zz:zz:zz:zz:zz:zz,eth5 vnet.addr=eth0,$(reboot)/24 vnet.route=default,fd00::zz"
        " vnet.host=-x vnet.forward=yes vnet.addr=eth0;reboot")


@pytest.fixture(scope="module")
def vm1(tiny_image: TinyImage) -> Iterator[Guest]:
    made = Guests(tiny_image)
    try:
        guest = made.start("vm1", VM1, ["hubport,hubid=0", "hubport,hubid=1"], extra_append=JUNK)
        guest.wait_ready()
        yield guest
    finally:
        made.cleanup()


@pytest.fixture
def agent(vm1: Guest) -> Iterator[GuestAgent]:
    with vm1.agent() as connected:
        yield connected


def sh(agent: GuestAgent, script: str, timeout: float = 30.0) -> str:
    result = agent.run_script(script, timeout)
    assert result.returncode == 0, result
    return result.stdout


def test_ready_on_console_and_junk_ignored(vm1: Guest) -> None:
    serial = vm1.serial()
    assert "vnet-tiny: ready" in serial
    assert serial.count("vnet-tiny: ignoring malformed parameter") == 4  # nic, route, host, forward
    assert "vnet-tiny: ignoring parameter with odd characters" in serial  # $(reboot), ;reboot


def test_nics_renamed_by_mac_with_mtu(agent: GuestAgent) -> None:
    assert sh(agent, "cat /sys/class/net/eth0/address /sys/class/net/lan1/address").split() == [
        "52:54:00:5e:00:02", "52:54:00:5e:00:01"]
    assert sh(agent, "cat /sys/class/net/eth0/mtu /sys/class/net/lan1/mtu").split() == ["1400", "1500"]
    # operstate follows `ip link set up` asynchronously (the kernel's linkwatch, up to a second
    # later, more under TCG on a loaded host): give it 10 s.
    states = sh(agent, "for i in $(seq 50); do s=$(cat /sys/class/net/eth0/operstate"
                       " /sys/class/net/lan1/operstate); [ \"$s\" = 'up\nup' ] && break; sleep 0.2;"
                       " done; echo $s")
    assert states.split() == ["up", "up"]
    assert "vnettmp" not in sh(agent, "ls /sys/class/net")


def test_addresses(agent: GuestAgent) -> None:
    v4 = sh(agent, "ip -4 -o addr show dev eth0; ip -4 -o addr show dev lan1")
    assert "inet 198.18.10.1/24" in v4 and "inet 198.18.11.1/24" in v4
    v6 = sh(agent, "ip -6 -o addr show dev eth0")
    assert "inet6 fd00:10::1/64" in v6
    assert "tentative" not in v6  # no DAD: usable at once


def test_routes_and_hostname(agent: GuestAgent) -> None:
    assert "default via 198.18.10.254 dev eth0" in sh(agent, "ip -4 route")
    assert "198.19.0.0/16 via 198.18.11.9 dev lan1" in sh(agent, "ip -4 route")
    assert "fd00:99::/64 via fd00:10::fe dev eth0" in sh(agent, "ip -6 route")
    assert sh(agent, "hostname").strip() == "vm1"


def test_forwarding(agent: GuestAgent) -> None:
    out = sh(agent, "cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding")
    assert out.split() == ["1", "1"]


def test_run_quoting_exit_codes_and_stderr(agent: GuestAgent) -> None:
    assert agent.run(["echo", "a  b", "$HOME", "'q'"]).stdout == "a  b $HOME 'q'\n"
    result = agent.run_script("echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    empty = agent.run(["true"])
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "")
    assert agent.run(["false"]).returncode == 1
    assert agent.run(["cat"]).stdout == ""  # stdin is /dev/null
    assert agent.run(["no-such-program"]).returncode == 127
    assert agent.run(["printf", "caf\\303\\251"]).stdout == "café"


def test_large_output_and_script(agent: GuestAgent) -> None:
    start = time.monotonic()
    result = agent.run_script("head -c 1048576 /dev/zero | tr '\\0' x", timeout=60)
    print(f"\n1 MiB of output in {time.monotonic() - start:.2f} s")
    assert result.returncode == 0 and result.stdout == "x" * 1048576
    script = "\n".join(f"echo line{k}" for k in range(500))  # ~6 KB request
    assert agent.run_script(script).stdout.split() == [f"line{k}" for k in range(500)]


def test_reconnect_discards_stale_replies(vm1: Guest) -> None:
    with vm1.agent() as first:
        assert first.run(["echo", "one"]).stdout == "one\n"
        with pytest.raises(AgentError, match=str(vm1.socket)):
            first.run_script("sleep 2; echo stale", timeout=1)
    # the stale reply is written to the next client (or dropped): it must not be taken for ours
    with vm1.agent() as second:
        assert second.run(["echo", "two"], timeout=30).stdout == "two\n"
        assert second.run(["echo", "three"]).stdout == "three\n"
    for k in range(3):  # one GuestAgent per command, as `vnet exec` then `vnet verify` do
        with vm1.agent() as again:
            assert again.run(["echo", str(k)]).stdout == f"{k}\n"


def test_disconnect_during_large_reply(vm1: Guest) -> None:
    # a raw client that asks for 3 MB, reads the first 64 KiB of the reply and hangs up
    command = base64.b64encode(b"head -c 3000000 /dev/zero | tr '\\0' y").decode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(60)
        raw.connect(str(vm1.socket))
        raw.sendall(f"old-1 {command} 60\n".encode())
        got = b""
        while len(got) < 65536:
            got += raw.recv(65536)
        assert got.lstrip(b"\n").startswith(b"old-1 0 eXl5")
    with vm1.agent() as second:
        assert second.run(["echo", "after"], timeout=60).stdout == "after\n"


def test_command_timeout_kills_the_command(vm1: Guest, agent: GuestAgent) -> None:
    # `sleep 600` outlasts every bound below: the AgentError proves run_script gave up on its own
    # 2 s timeout, not that the command ended (one that waited would hang, caught by `returns`).
    with pytest.raises(AgentError, match=f"{vm1.socket}.*within 2 s") as caught:
        returns(lambda: agent.run_script("sleep 600", timeout=2), "run_script past its timeout")
    assert "sleep 600" in caught.value.message
    # The agent is single-threaded: it answers again only once the guest has killed the command.
    # 120 s is far past the guest's 2 s kill on any machine and far short of sleep's 600 s.
    assert agent.run(["echo", "free"], timeout=120).stdout == "free\n"
    assert "sleep 600" not in sh(agent, "ps")


def test_second_client_waits_for_the_first(vm1: Guest, agent: GuestAgent) -> None:
    assert agent.run(["true"]).returncode == 0  # `agent` holds QEMU's one connection
    with vm1.agent() as other:
        with pytest.raises(AgentError, match="within 2 s") as caught:
            other.run(["echo", "queued"], timeout=2)
        assert "another client" in caught.value.hint
        agent.close()
        assert other.run(["echo", "now"], timeout=20).stdout == "now\n"


def test_agent_restarts_after_being_killed(vm1: Guest, agent: GuestAgent) -> None:
    kill = ("for d in /proc/[0-9]*; do p=${d#/proc/}; [ $p = 1 ] && continue;"
            " [ \"$(cut -d' ' -f4 $d/stat)\" = 1 ] || continue;"
            " [ \"$(tr '\\0' ' ' < $d/cmdline)\" = '/bin/sh /init ' ] && kill -9 $p; done")
    with pytest.raises(AgentError):
        agent.run_script(kill, timeout=3)  # the agent dies before it can answer
    agent.wait_ready(30)
    assert agent.run(["echo", "back"]).stdout == "back\n"
    assert "agent ended; restarting it" in vm1.serial()


def test_resident_memory(vm1: Guest) -> None:
    rss = vm1.rss_kib()
    print(f"\nvm1: boot {vm1.boot_seconds:.1f} s, QEMU VmRSS {rss} KiB after the tests")
    assert rss > 0


def test_two_guests_ping_on_one_segment(guests: Guests) -> None:
    a_sock, b_sock = guests.workdir / "a.dgram", guests.workdir / "b.dgram"
    dgram = "dgram,local.type=unix,local.path={},remote.type=unix,remote.path={}"
    pa = GuestConfig("pa", nics=(GuestNic("52:54:00:5e:01:01", "eth0"),),
                     addresses=(("eth0", "198.18.20.1/24"), ("eth0", "fd00:20::1/64")))
    pb = GuestConfig("pb", nics=(GuestNic("52:54:00:5e:01:02", "eth0"),),
                     addresses=(("eth0", "198.18.20.2/24"), ("eth0", "fd00:20::2/64")))
    first = guests.start("pa", pa, [dgram.format(a_sock, b_sock)])
    second = guests.start("pb", pb, [dgram.format(b_sock, a_sock)])
    first.wait_ready()
    second.wait_ready()
    with first.agent() as agent:
        result = agent.run_script("ping -c 2 -W 5 198.18.20.2", timeout=30)
        assert result.returncode == 0, result
        assert " 0% packet loss" in result.stdout
    with second.agent() as agent:
        result = agent.run_script("ping6 -c 2 -W 5 fd00:20::1 && ping -c 1 -W 5 198.18.20.1", timeout=30)
        assert result.returncode == 0, result
        assert agent.run_script("ping -c 1 -W 2 198.18.20.99", timeout=30).returncode != 0
    print(f"\npair: QEMU VmRSS {first.rss_kib()} / {second.rss_kib()} KiB")

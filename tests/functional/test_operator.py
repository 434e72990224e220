"""What a person at the terminal gets: `status` per node, plan rows with old → new values,
`plan --detailed-exitcode`, destroy's answers (a lab that is not there, --json, --all asking
first, TAPs held by a guest vnet did not start)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from vnet import api
from vnet.errors import EX_DATAERR, EX_UNAVAILABLE

from .conftest import Labs
from .hostlib import VNET, ip_json, vnet

pytestmark = pytest.mark.root

LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns, routes: [{to: default, via: 198.18.71.1}]}
  t1: {kind: tap}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.71.1/24, mtu: $mtu}
  - {endpoints: [h2:eth0, $b1], ip: 198.18.71.2/24}
  - {endpoints: [t1:eth0, $b1]}
"""


def _applied(labs: Labs, mtu: str = "1500") -> tuple[Any, str]:
    lab = labs.new("op")
    path = str(lab.write(LAB, mtu=mtu))
    api.apply(lab.load())
    return lab, path


def _node(row: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in row["nodes"] if n["name"] == name)


def _iface(node: dict[str, Any], name: str) -> dict[str, list[str]]:
    facts: dict[str, list[str]] = next(i["facts"] for i in node["interfaces"] if i["name"] == name)
    return facts


def test_status_shows_each_node_as_the_host_has_it(labs: Labs) -> None:
    lab, path = _applied(labs)
    [row] = json.loads(vnet("status", "--lab", lab.name, "--json", check=True).stdout)
    assert {n["name"]: n["kind"] for n in row["nodes"]} == {
        "h1": "netns", "h2": "netns", "t1": "-", lab.bridge(1): "linux switch"}
    for node in ("h1", "h2"):  # what the kernel says, read independently of vnet
        [eth0] = ip_json("link", "show", "eth0", netns=lab.namespace(node))
        facts = _iface(_node(row, node), "eth0")
        assert facts["mac"] == [eth0["address"]]
        assert facts["peer"] == [lab.host_end(node, "eth0")]
        assert facts["switch"] == [lab.bridge(1)]
        assert _node(row, node)["facts"]["namespace"] == [lab.namespace(node)]
    assert _iface(_node(row, "h1"), "eth0")["address"] == ["198.18.71.1/24"]
    assert _node(row, "h2")["facts"]["route"] == ["0.0.0.0/0 via 198.18.71.1"]
    [tap] = _iface(_node(row, "t1"), "eth0")["tap"]
    assert ip_json("link", "show", tap)[0]["master"] == lab.bridge(1)
    # with the file, the node kinds come from it; the text view lists the same nodes
    [with_file] = json.loads(vnet("status", path, "--json", check=True).stdout)
    assert _node(with_file, "t1")["kind"] == "tap"
    text = vnet("status", "--lab", lab.name, check=True).stdout
    assert "nodes on this host" in text and eth0["address"] in text, text


def test_status_sees_a_mac_changed_by_hand(labs: Labs) -> None:
    lab, _ = _applied(labs)
    namespace = lab.namespace("h1")
    subprocess.run(["ip", "-n", namespace, "link", "set", "eth0", "address", "02:00:00:00:71:71"], check=True)
    [row] = json.loads(vnet("status", "--lab", lab.name, "--json", check=True).stdout)
    assert _iface(_node(row, "h1"), "eth0")["mac"] == ["02:00:00:00:71:71"]


def test_status_of_an_unknown_lab_says_so(labs: Labs) -> None:
    lab, _ = _applied(labs)
    done = vnet("status", "--lab", lab.name + "x")
    assert done.returncode == EX_UNAVAILABLE, done.stdout
    assert f"no lab {lab.name}x on this host" in done.stderr and lab.name in done.stderr  # labs here


def test_plan_shows_where_a_change_comes_from_and_its_values(labs: Labs) -> None:
    lab, _ = _applied(labs, mtu="1500")
    changed = str(lab.write(LAB, filename="changed.yaml", mtu="1400"))
    plan = json.loads(vnet("plan", changed, "--json", check=True).stdout)
    [veth] = [c for c in plan["changes"] if c["kind"] == "veth" and c["origin"] == "h1:eth0"]
    assert veth["action"] == "update"
    assert {"field": "a.mtu", "old": "1500", "new": "1400"} in veth["differences"]
    text = vnet("plan", changed, check=True).stdout
    assert "1500 → 1400" in text and "h1:eth0" in text


def test_plan_detailed_exitcode(labs: Labs) -> None:
    lab, path = _applied(labs)
    assert vnet("plan", path, "--detailed-exitcode").returncode == 0  # the host matches
    assert vnet("plan", path).returncode == 0
    changed = str(lab.write(LAB, filename="changed.yaml", mtu="1400"))
    assert vnet("plan", changed, "--detailed-exitcode").returncode == 2  # changes
    assert vnet("plan", changed).returncode == 0
    bad = lab.directory / "bad.yaml"
    bad.write_text("name: [\n")
    assert vnet("plan", str(bad)).returncode == EX_DATAERR
    assert vnet("plan", str(bad), "--detailed-exitcode").returncode == 1  # an error, not "changes"
    usage = vnet("plan", "--detailed-exitcode", "--no-such-option", path)
    assert usage.returncode == 1, usage.stderr  # click's usage error is 2 elsewhere


def test_destroy_says_when_nothing_was_there_and_reports_json(labs: Labs) -> None:
    lab, _ = _applied(labs)
    absent = vnet("destroy", "--lab", lab.name + "x")
    assert absent.returncode == 0 and "nothing of it is on this host" in absent.stdout
    [report] = json.loads(vnet("destroy", "--lab", lab.name, "--json", check=True).stdout)
    assert report["lab"] == lab.name
    assert report["removed"]["netns"] == 2 and report["removed"]["bridge"] == 1, report


HOLD_TAP = """
import fcntl, os, struct, sys, time
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", sys.argv[1].encode(), 0x0002 | 0x1000))
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def guest_on_tap() -> Iterator[list[subprocess.Popen[str]]]:
    """Stand-ins for a guest vnet did not start (libvirt's QEMU): a process holding a TAP open."""
    held: list[subprocess.Popen[str]] = []
    yield held
    for process in held:
        process.kill()
        process.wait(10)


def test_destroy_refuses_while_another_guest_holds_a_tap(labs: Labs,
                                                         guest_on_tap: list[subprocess.Popen[str]]) -> None:
    lab, _ = _applied(labs)
    [row] = json.loads(vnet("status", "--lab", lab.name, "--json", check=True).stdout)
    [tap] = _iface(_node(row, "t1"), "eth0")["tap"]
    holder = subprocess.Popen([sys.executable, "-c", HOLD_TAP, tap], stdout=subprocess.PIPE, text=True)
    guest_on_tap.append(holder)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    refused = vnet("destroy", "--lab", lab.name)
    assert refused.returncode == EX_UNAVAILABLE, refused.stdout
    assert f"pid {holder.pid}" in refused.stderr and f"TAP {tap} (t1:eth0)" in refused.stderr
    assert "--force" in refused.stderr
    assert ip_json("link", "show", tap), "a refused destroy changed nothing"
    forced = vnet("destroy", "--lab", lab.name, "--force")
    assert forced.returncode == 0, forced.stderr
    assert vnet("status", "--lab", lab.name).returncode == EX_UNAVAILABLE  # gone


def _answer_on_a_terminal(args: list[str], answer: bytes) -> tuple[int, str]:
    """Run vnet with its standard streams on a pseudo terminal; answer its prompt."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([VNET, *args], stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal is gone with the process
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"?" in output:
                os.write(leader, answer)
                answered = True
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(30), output.decode(errors="replace")


def test_destroy_all_asks_on_a_terminal(labs: Labs) -> None:
    lab, _ = _applied(labs)
    code, output = _answer_on_a_terminal(["destroy", "--all"], b"n\n")
    assert f"{lab.name}" in output and "destroy" in output and "?" in output, output
    assert code == 1 and "nothing destroyed" in output, output
    [row] = json.loads(vnet("status", "--lab", lab.name, "--json", check=True).stdout)
    assert row["objects"]["netns"] == 2  # still there

"""The CLI verbs that look at or change the host: exec, status, not-root, destroy --all."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostbox import Sandbox
from hostbox import sandbox as host_sandbox

from vnet import api
from vnet.errors import EX_DATAERR, EX_NOPERM

from .conftest import Labs
from .hostlib import VNET, has_tool, ip_json, run, unique, vnet

pytestmark = pytest.mark.root

LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns, routes: [{to: default, via: 198.18.70.1}]}
  t1: {kind: tap}
links:
  - endpoints: [h1:eth0, $b1]
    ip: [198.18.70.1/24, "fd00:70::1/64"]
  - endpoints: [h2:eth0, $b1]
    ip: 198.18.70.2/24
  - endpoints: [t1:eth0, $b1]
"""


def test_exec_and_status(labs: Labs) -> None:
    lab = labs.new("cli")
    path = str(lab.write(LAB))
    applied = vnet("apply", path, "--verify")
    assert applied.returncode == 0, (applied.stdout, applied.stderr)

    shown = vnet("exec", path, "h1", "--", "ip", "-br", "addr")
    assert shown.returncode == 0, shown.stderr
    eth0 = next(line.split() for line in shown.stdout.splitlines() if line.startswith("eth0"))
    assert "198.18.70.1/24" in eth0 and "fd00:70::1/64" in eth0
    # The command sees the node's own /sys (like `ip netns exec`) and its exit status is passed on.
    assert vnet("exec", path, "h2", "--", "cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1500"
    assert vnet("exec", path, "h2", "--", "sh", "-c", "exit 3").returncode == 3
    # a tap node has no namespace: the file says so, a mistake in the arguments (test_exit_codes.py)
    assert vnet("exec", path, "t1", "--", "true").returncode == EX_DATAERR
    assert vnet("exec", path, "nosuch", "--", "true").returncode == EX_DATAERR

    rows = json.loads(vnet("status", "--json", check=True).stdout)
    mine = [row for row in rows if row["lab"] == lab.name]
    assert len(mine) == 1
    assert mine[0]["objects"]["netns"] == 2
    assert mine[0]["objects"]["bridge"] == 1
    assert mine[0]["objects"]["tap"] == 1
    with_file = json.loads(vnet("status", path, "--json", check=True).stdout)
    assert [row["lab"] for row in with_file] == [lab.name] and with_file[0]["drift"] == []
    by_name = json.loads(vnet("status", "--lab", lab.name, "--json", check=True).stdout)
    assert by_name[0]["objects"] == mine[0]["objects"]


@pytest.fixture
def world_readable() -> Iterator[Path]:
    """A directory that an unprivileged user can read (pytest's tmp_path is root's, 0700)."""
    path = Path(tempfile.mkdtemp(prefix="vnet-func-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _as_nobody() -> list[str]:
    if has_tool("setpriv"):
        return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    pytest.skip("setpriv is not installed")


def test_not_root_exits_77(labs: Labs, world_readable: Path) -> None:
    lab = labs.new("usr")
    path = world_readable / "lab.yaml"
    path.write_text(lab.write(LAB).read_text())
    path.chmod(0o644)
    prefix = _as_nobody()
    if run(*prefix, "true", check=False).returncode != 0:
        pytest.skip("cannot switch to user nobody here")
    for args in (["apply", str(path)], ["destroy", "--lab", lab.name], ["verify", str(path)],
                 ["exec", str(path), "h1", "--", "true"]):
        done = run(*prefix, VNET, *args, check=False, env={"HOME": "/"})
        assert done.returncode == EX_NOPERM, (args, done.stdout, done.stderr)
        assert "root" in done.stderr
    assert not [link for link in ip_json("link", "show")
                if str(link.get("ifalias", "")).startswith(f"vnet:{lab.name}:")]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with host_sandbox() as box:
        yield box


def test_destroy_all_removes_only_vnet_labs(tmp_path: Path, sandbox: Sandbox) -> None:
    names = [unique("all"), unique("all")]
    for name, subnet in zip(names, ("198.18.71", "198.18.72"), strict=True):
        (tmp_path / f"{name}.yaml").write_text(LAB.replace("$lab", name).replace("$b1", f"{name}b1")
                                              .replace("198.18.70", subnet))
        done = sandbox.run(VNET, "apply", str(tmp_path / f"{name}.yaml"), check=False)
        assert done.returncode == 0, (done.stdout, done.stderr)
    # Lookalikes made by hand: vnet-like names and aliases, but no vnet mark.
    sandbox.run("ip", "link", "add", "vnet-decoy", "type", "bridge")
    sandbox.run("ip", "link", "set", "vnet-decoy", "alias", f"vnet-{names[0]}:decoy")
    sandbox.run("ip", "link", "add", f"{names[0]}b9", "type", "bridge")
    for ns in (f"vnet-{names[0]}-zz", "vnet-decoy-h1"):
        sandbox.run("ip", "netns", "add", ns)
    status = json.loads(sandbox.run(VNET, "status", "--json").stdout)
    assert sorted(row["lab"] for row in status) == sorted(names)

    done = sandbox.run(VNET, "destroy", "--all", check=False)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert all(f"lab {name}: removed 2 namespaces" in done.stdout for name in names)
    links = json.loads(sandbox.run("ip", "-j", "link", "show").stdout)
    assert sorted(link["ifname"] for link in links) == sorted(["lo", "vnet-decoy", f"{names[0]}b9"])
    assert [link.get("ifalias") for link in links if link["ifname"] == "vnet-decoy"] == [
        f"vnet-{names[0]}:decoy"]
    listed = sandbox.run("ip", "-j", "netns", "list").stdout or "[]"
    namespaces = [entry["name"] for entry in json.loads(listed)]
    assert sorted(namespaces) == sorted([f"vnet-{names[0]}-zz", "vnet-decoy-h1"])
    assert json.loads(sandbox.run(VNET, "status", "--json").stdout) == []
    assert sandbox.run("ls", "-A", "/run/vnet").stdout.split() == []
    # The real host never saw any of it.
    assert not [link for link in ip_json("link", "show") if link["ifname"] in ("vnet-decoy", f"{names[0]}b9")]
    assert not set(api.labs()) & set(names)

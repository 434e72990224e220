"""Concurrency: vnet processes racing for one lab never interleave; labs side by side never touch
each other; `destroy --all` removes every lab and nothing else.

- Two `apply --wait` and one `apply` of one lab, started together: one of them makes all the
  changes; the others find nothing to do (or the one without --wait exits 75). Interleaved
  applies would split the creates between them or fail on objects the other just made.
- `apply --wait` and `destroy --wait` started together: the host ends in one of the two states,
  the lab converged or gone, never half.
- Three labs whose names are prefixes of each other (p, p-c, pc) applied in parallel, then two
  destroyed in parallel: the third's devices (ifindexes), namespaces and OVS rows (uuids) are
  untouched throughout, its plan stays empty and verify passes.
- `destroy --all` in a private network, mount and PID namespace with its own Open vSwitch (a
  second userspace datapath in another network namespace shares nothing with the host's): two labs
  (OVS, Linux bridges, a guest) go; lookalikes stay: unmarked objects with the labs' names, marks
  with the wrong shape (`vnet-<lab>:`, `vnet:<lab>` without its colon, `xvnet:...`, `vnet:../x:`), a
  marked namespace without the `vnet-` name, OVS rows with almost-marks (`vnet_lab`, `vnet-lab-x`,
  `vnet-key` alone, `vnet-lab=../..`), and processes named like guests: another user's, and one
  with a malformed name.
CI runs 3 rounds of each race; the extended variant 10.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vnet import api
from vnet.errors import EX_TEMPFAIL

from .rellib import (
    CRASH_LAB,
    GUEST_TAP,
    VNET,
    LabFiles,
    PrivateOvs,
    RelLabs,
    Sandbox,
    case,
    cli,
    crash_lab,
    destroy_clean,
    extended,
    ip_json,
    sandbox,
    settled_leftovers,
    unique,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("as_root")


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def _created(out: str) -> int:
    return int(json.loads(out)["summary"]["create"])


def _one_apply_round(ovs: PrivateOvs, files: LabFiles, count: int, k: int) -> None:
    path = str(files.files[-1])
    racers = [cli("apply", "--wait", "--json", path, remote=ovs.remote),
              cli("apply", "--wait", "--json", path, remote=ovs.remote),
              cli("apply", "--json", path, remote=ovs.remote)]
    results = [_finish(p) for p in racers]
    conflicts = 0
    with case("concurrency", f"3 applies of one lab, round {k}", runs=3, conflicts=2):
        for code, out, err in results:
            assert code in (0, EX_TEMPFAIL), (code, out, err)
            conflicts += code == EX_TEMPFAIL or (code == 0 and _created(out) == 0)
        made = sorted(_created(out) for code, out, _ in results if code == 0)
        assert made[-1] == count and sum(made) == count, f"interleaved: creates {made} of {count}"
        assert conflicts == 2
        assert api.plan(files.load(), ovsdb=ovs.remote).empty
    destroy_clean(ovs, files, f"round {k}")


def _apply_races(labs: RelLabs, ovs: PrivateOvs, rounds: int) -> None:
    files, lab = crash_lab(labs, "ca", False)
    count = len(api.plan(lab, ovsdb=ovs.remote).changes)
    for k in range(rounds):
        _one_apply_round(ovs, files, count, k)


def test_applies_of_one_lab_never_interleave(labs: RelLabs, ovs: PrivateOvs) -> None:
    _apply_races(labs, ovs, 3)


@extended
def test_applies_of_one_lab_never_interleave_extended(labs: RelLabs, ovs: PrivateOvs) -> None:
    _apply_races(labs, ovs, 10)


def _apply_destroy_races(labs: RelLabs, ovs: PrivateOvs, rounds: int) -> None:
    files, lab = crash_lab(labs, "cb", False)
    path = str(files.files[-1])
    for k in range(rounds):
        apply = cli("apply", "--wait", path, remote=ovs.remote)
        if k % 2:  # alternate which one asks first
            time.sleep(0.05)
        destroy = cli("destroy", "--wait", "--lab", files.name, remote=ovs.remote)
        (a_code, _, a_err), (d_code, _, d_err) = _finish(apply), _finish(destroy)
        with case("concurrency", f"apply and destroy of one lab, round {k}", runs=2, conflicts=1):
            assert (a_code, d_code) == (0, 0), (a_err, d_err)
            left = settled_leftovers(ovs, files, timeout=3)
            if left:  # apply went second: the lab must be whole
                assert api.plan(lab, ovsdb=ovs.remote).empty and api.verify(lab, ovsdb=ovs.remote).ok
        destroy_clean(ovs, files, f"round {k}")


def test_apply_and_destroy_race(labs: RelLabs, ovs: PrivateOvs) -> None:
    _apply_destroy_races(labs, ovs, 3)


@extended
def test_apply_and_destroy_race_extended(labs: RelLabs, ovs: PrivateOvs) -> None:
    _apply_destroy_races(labs, ovs, 10)


# --- three labs side by side ------------------------------------------------------------------

def _identity(ovs: PrivateOvs, files: LabFiles) -> dict[str, Any]:
    """What must not change while other labs come and go: ifindexes and OVS row uuids."""
    mark = f"vnet:{files.name}:"
    found: dict[str, Any] = {f"dev {link['ifname']}": link["ifindex"] for link in ip_json("link", "show")
                             if str(link.get("ifalias", "")).startswith(mark)}
    for node in ("h1", "h2", "h3", "h4", "h5", "r1"):
        for link in ip_json("link", "show", netns_name=files.namespace(node)):
            found[f"{node} {link['ifname']}"] = link["ifindex"]
    for table in ("Bridge", "Port", "Interface"):
        for row in ovs.find(table, f"external_ids:vnet-lab={files.name}"):
            found[f"{table} {row['name']}"] = row["_uuid"]
    return found


def _together(ovs: PrivateOvs, argvs: list[list[str]], what: str) -> None:
    processes = [cli(*argv, remote=ovs.remote) for argv in argvs]
    results = [_finish(p) for p in processes]
    with case("concurrency", what, runs=len(argvs)):
        assert [code for code, _, _ in results] == [0] * len(argvs), results


def test_three_labs_in_parallel(labs: RelLabs, ovs: PrivateOvs) -> None:
    first, _ = crash_lab(labs, "cp", False)
    others = []
    for suffix in ("-c", "c"):  # names that start with the first's name
        other = LabFiles(first.name + suffix, first.directory.parent / f"lab{suffix}")
        other.directory.mkdir()
        other.write(Path(first.files[-1]).read_text().replace(f"name: {first.name}", f"name: {other.name}")
                    .replace(first.bridge(1), other.bridge(1)).replace(first.bridge(2), other.bridge(2))
                    .replace(first.bridge(3), other.bridge(3)))
        labs.made.append(other)
        others.append(other)
    everyone = [first, *others]
    _together(ovs, [["apply", str(f.files[-1])] for f in everyone], "3 labs applied in parallel")
    kept = _identity(ovs, first)
    assert len(kept) > 30
    _together(ovs, [["destroy", "--lab", f.name] for f in others], "2 labs destroyed in parallel")
    with case("concurrency", "the third lab untouched by the others' apply and destroy"):
        assert _identity(ovs, first) == kept
        lab = first.load()
        assert api.plan(lab, ovsdb=ovs.remote).empty and api.verify(lab, ovsdb=ovs.remote).ok
        assert not settled_leftovers(ovs, others[0]) and not settled_leftovers(ovs, others[1])
    destroy_clean(ovs, first, "the third lab")


# --- destroy --all in a private host ----------------------------------------------------------

START_OVS = ("import sys\nfrom vnet.host import ovs_daemon\n"
             "ovs_daemon.start(ovs_daemon.OvsPaths.private(sys.argv[1]))\n")
GUEST_LAB = """
name: $lab
switches:
  $b1: {type: linux}
nodes:
  h1: {kind: netns}
  vm1: {kind: vm, image: tiny, memory: 128}
links:
  - {endpoints: [h1:eth0, $b1], ip: 198.18.23.1/24}
  - {endpoints: [vm1:eth0, $b1], ip: 198.18.23.9/24}
"""
# A process that looks like a guest in /proc (argv[0] qemu-..., `-name guest=vnet:...`); the `; :`
# keeps bash from exec'ing sleep, which would replace that command line.
FAKE_GUEST = "exec -a qemu-system-x86_64 bash -c 'sleep 900; :' -name {name}"


def _decoys(box: Sandbox, vsctl: Callable[..., Any], lab: str) -> None:
    """Lookalikes of `lab`'s objects, without its mark (or with a malformed one)."""
    aliases = {f"{lab}b9": None, "vnet-decoy": f"vnet-{lab}:decoy", "dcy-nocolon": f"vnet:{lab}",
               "dcy-prefix": f"xvnet:{lab}:h1", "dcy-dotdot": "vnet:../x:eth0"}
    for name, alias in aliases.items():
        box.run("ip", "link", "add", name, "type", "bridge")
        if alias:
            box.run("ip", "link", "set", name, "alias", alias)
    for ns in (f"vnet-{lab}-zz", "vnet-decoy-h1", f"notvnet-{lab}-h1"):
        box.run("ip", "netns", "add", ns)
    box.run("ip", "-n", f"notvnet-{lab}-h1", "link", "set", "lo", "alias", f"vnet:{lab}:h1")
    for name, ids in ((f"{lab}o9", ""), ("dcy-underscore", f"vnet_lab={lab}"), ("dcy-key", "vnet-key=x"),
                      ("dcy-badlab", "vnet-lab=../.."), ("dcy-suffix", f"vnet-lab-x={lab}")):
        vsctl("add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev",
              *([f"external_ids:{ids}"] if ids else []))
    for user, name in (("nobody", f"guest=vnet:{lab}:vm9"), ("root", "guest=vnet:..:x")):
        fake = FAKE_GUEST.format(name=name)
        box.run("setsid", "-f", "sh", "-c", 'exec "$@" </dev/null >/dev/null 2>&1', "sh",  # detached
                "setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", "bash", "-c", fake)


def _lo_alias(box: Sandbox, ns: str) -> str | None:
    lo = json.loads(box.run("ip", "-n", ns, "-j", "link", "show", "lo").stdout)
    return lo[0].get("ifalias") if lo else None


def _host_view(box: Sandbox, vsctl: Callable[..., Any]) -> dict[str, Any]:
    """Everything in the sandbox a destroy could touch, with what marks it."""
    links = json.loads(box.run("ip", "-j", "link", "show").stdout)
    listed = [entry["name"] for entry in json.loads(box.run("ip", "-j", "netns", "list").stdout or "[]")]
    bridges = json.loads(vsctl("--format=json", "--columns=name,external_ids", "list", "Bridge").stdout)
    processes = box.run("ps", "-eo", "user=,args=").stdout.splitlines()
    return {"links": sorted((link["ifname"], link.get("ifalias")) for link in links),
            "netns": sorted((ns, _lo_alias(box, ns)) for ns in listed),
            "ovs": sorted(json.dumps(row) for row in bridges["data"]),
            "guests": sorted(tuple(line.split(None, 1)) for line in processes if "guest=vnet:" in line),
            "run": box.run("ls", "-A", "/run/vnet").stdout.split()}


def _sandbox_labs(box: Sandbox, tmp_path: Path, remote: str) -> list[str]:
    names = []
    for prefix, template in (("sa", CRASH_LAB), ("sb", GUEST_LAB)):
        files = LabFiles(unique(prefix), tmp_path / prefix)
        files.directory.mkdir()
        files.write(template, guest=GUEST_TAP, guest_expect="")
        box.run(VNET, "apply", "--ovsdb", remote, str(files.files[-1]))
        names.append(files.name)
    return names


def test_destroy_all_removes_labs_and_nothing_else(as_root: None, tmp_path: Path) -> None:
    run_dir = Path(tempfile.mkdtemp(prefix="vnet-sbx-", dir="/tmp"))  # short: a unix socket path
    try:
        with sandbox() as box:
            box.run(sys.executable, "-c", START_OVS, str(run_dir))
            remote = f"unix:{run_dir}/db.sock"

            def vsctl(*args: str) -> subprocess.CompletedProcess[str]:
                return box.run("ovs-vsctl", f"--db={remote}", *args)
            names = _sandbox_labs(box, tmp_path, remote)
            _decoys(box, vsctl, names[0])
            wait_for(lambda: len(_host_view(box, vsctl)["guests"]) == 3, 30, "the fake guests")
            before = _host_view(box, vsctl)
            with case("concurrency", "destroy --all among lookalikes", runs=len(names)):
                done = box.run(VNET, "destroy", "--all", "--ovsdb", remote)
                assert sorted(line.split(":")[0] for line in done.stdout.splitlines()) == sorted(
                    f"lab {name}" for name in names), done.stdout
                _only_the_labs_went(before, _settled(box, vsctl, names), names)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _theirs(key: str, item: Any, names: list[str]) -> bool:
    """Whether `item` of _host_view's `key` is one of the labs' objects, by vnet's own rules."""
    if key == "links":
        name, alias = item
        marks = tuple(f"{m}{n}:" for n in names for m in ("vnet:", "vnet-reap:"))
        return str(alias).startswith(marks) or name in {f"{n}b{k}" for n in names for k in (1, 2, 3)}
    if key == "netns":
        return any(item[0].startswith(f"vnet-{n}-") and str(item[1]).startswith(f"vnet:{n}:") for n in names)
    if key == "ovs":
        return any(f'["vnet-lab", "{n}"]' in item for n in names)
    user, args = item
    return user == "root" and any(f"guest=vnet:{n}:" in args for n in names)


def _only_the_labs_went(before: dict[str, Any], after: dict[str, Any], names: list[str]) -> None:
    assert after["run"] == [], after["run"]
    for key in ("links", "netns", "ovs", "guests"):
        kept = sorted(item for item in before[key] if not _theirs(key, item, names))
        assert sorted(after[key]) == kept, (key, before[key], after[key])
        assert len(kept) < len(before[key]), f"the labs had no {key}: the check checks nothing"
    assert len(after["guests"]) == 2 and len(after["ovs"]) == 5 and len(after["netns"]) == 3


def _settled(box: Sandbox, vsctl: Callable[..., Any], names: list[str]) -> dict[str, Any]:
    """The sandbox once its kernel and reaper are done (namespaces and retired bridges go later)."""
    def done() -> bool:
        view = _host_view(box, vsctl)
        return not any(str(alias).startswith("vnet-reap:") for _, alias in view["links"]) and not any(
            _theirs("netns", item, names) for item in view["netns"])
    wait_for(done, 20, "the sandbox to settle")
    return _host_view(box, vsctl)

"""cloud-init NoCloud seeds: the three files (golden), their meaning, and the ISO volume.

Golden files: each `tests/golden/cloudinit/<case>/` holds a `lab.yaml` and the exact
`meta-data`, `user-data` and `network-config` vnet writes for its vm node. `pytest
--update-golden` rewrites them (the repository's convention); review the diff.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pycdlib
import pytest
import yaml

import vnet
from vnet.vm import cloudinit
from vnet.vm.cloudinit import SeedConfig, SeedNic, SeedRoute, seed_config, seed_files, write_seed

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "cloudinit"
CASES = sorted(p.parent for p in GOLDEN.glob("*/lab.yaml"))


def _vm_of(lab: vnet.Lab) -> str:
    [node] = [name for name, spec in lab.topology.nodes.items() if spec.kind == "vm"]
    return node


def _files(case: Path) -> tuple[vnet.Lab, dict[str, str]]:
    lab = vnet.load(str(case / "lab.yaml"))
    return lab, seed_files(seed_config(lab, _vm_of(lab)))


def test_there_are_golden_cases() -> None:
    assert [c.name for c in CASES] == ["router-vm", "single-nic"]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_seed_files_match_golden(case: Path, update_golden: bool) -> None:
    _, files = _files(case)
    assert sorted(files) == sorted(cloudinit.SEED_FILES)
    for name, text in files.items():
        expected = case / name
        if update_golden:
            expected.write_text(text, encoding="utf-8")
            continue
        assert expected.exists(), f"missing {expected}; run pytest --update-golden"
        assert text == expected.read_text(encoding="utf-8"), f"{case.name}/{name} differs"


def _loaded(files: dict[str, str]) -> dict[str, Any]:
    return {name: yaml.safe_load(text) for name, text in files.items()}


def test_router_vm_means_what_the_topology_says() -> None:
    lab, files = _files(GOLDEN / "router-vm")
    assert files["user-data"].startswith("#cloud-config\n")
    data = _loaded(files)
    assert data["meta-data"]["local-hostname"] == "r1"
    assert data["meta-data"]["instance-id"].startswith("vnet-ci-router-r1-")
    net = data["network-config"]
    assert net["version"] == 2
    eth0, eth1 = net["ethernets"]["eth0"], net["ethernets"]["eth1"]
    assert eth0["match"] == {"macaddress": lab.interfaces[("r1", "eth0")].mac}
    assert eth1["match"] == {"macaddress": lab.interfaces[("r1", "eth1")].mac}
    assert (eth0["set-name"], eth1["set-name"]) == ("eth0", "eth1")
    assert eth0["addresses"] == ["198.18.1.2/24", "fd00:1::2/64"]
    assert eth1["addresses"] == ["198.18.2.1/30"]
    assert "mtu" not in eth0 and eth1["mtu"] == 9000
    assert eth0["routes"] == [{"to": "0.0.0.0/0", "via": "198.18.1.254"},
                              {"to": "::/0", "via": "fd00:1::fe"}]
    assert eth1["routes"] == [{"to": "198.18.9.0/24", "via": "198.18.2.2", "metric": 100}]
    assert not eth0["dhcp4"] and not eth0["dhcp6"]
    user = data["user-data"]
    assert user["package_update"] is False and "packages" not in user
    assert user["write_files"][0]["content"] == "net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n"
    assert user["bootcmd"] == ["sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv6.conf.all.forwarding=1"]
    assert "qemu-guest-agent" in files["user-data"]


def test_forwarding_off_is_written_as_zero() -> None:
    _, files = _files(GOLDEN / "single-nic")
    user = _loaded(files)["user-data"]
    assert user["bootcmd"] == ["sysctl -w net.ipv4.ip_forward=0", "sysctl -w net.ipv6.conf.all.forwarding=0"]
    assert _loaded(files)["meta-data"]["local-hostname"] == "web-1"  # `_` is not a hostname character


BASE = SeedConfig("lab1", "vm1", "vm1", (SeedNic("02:00:00:00:00:01", "eth0"),),
                  (("eth0", "198.18.0.2/24"),), (SeedRoute("default", "198.18.0.1"),))


@pytest.mark.parametrize("changed", [
    SeedConfig("lab1", "vm1", "vm1", (SeedNic("02:00:00:00:00:01", "eth0", 1400),),
               BASE.addresses, BASE.routes),
    SeedConfig("lab1", "vm1", "vm1", BASE.nics, (("eth0", "198.18.0.3/24"),), BASE.routes),
    SeedConfig("lab1", "vm1", "vm1", BASE.nics, BASE.addresses, ()),
    SeedConfig("lab1", "vm1", "vm1", BASE.nics, BASE.addresses, BASE.routes, forwarding=True),
    SeedConfig("lab1", "vm1", "other", BASE.nics, BASE.addresses, BASE.routes),
], ids=["mtu", "address", "routes", "forwarding", "hostname"])
def test_a_config_change_changes_the_instance_id(changed: SeedConfig) -> None:
    assert cloudinit.instance_id(changed) != cloudinit.instance_id(BASE)


def test_the_same_config_keeps_its_instance_id_and_bytes() -> None:
    same = SeedConfig("lab1", "vm1", "vm1", (SeedNic("02:00:00:00:00:01", "eth0"),),
                      (("eth0", "198.18.0.2/24"),), (SeedRoute("default", "198.18.0.1"),))
    assert seed_files(same) == seed_files(BASE)
    assert cloudinit.instance_id(BASE).startswith("vnet-lab1-vm1-")
    other_lab = SeedConfig("lab2", *[getattr(BASE, f) for f in ("node", "hostname", "nics", "addresses",
                                                                  "routes", "forwarding")])
    assert cloudinit.instance_id(other_lab) != cloudinit.instance_id(BASE)


def test_macs_that_look_like_yaml11_numbers_stay_strings() -> None:
    # 12:34:56:… is a base-60 integer in YAML 1.1 (which cloud-init's PyYAML speaks) unless quoted.
    config = SeedConfig("lab1", "vm1", "vm1", (SeedNic("12:34:56:12:34:56", "eth0"),))
    net = yaml.safe_load(seed_files(config)["network-config"])
    assert net["ethernets"]["eth0"]["match"]["macaddress"] == "12:34:56:12:34:56"


def test_default6_and_gateway_outside_every_subnet() -> None:
    config = SeedConfig("lab1", "vm1", "vm1",
                        (SeedNic("02:00:00:00:00:01", "eth0"), SeedNic("02:00:00:00:00:02", "eth1")),
                        (("eth1", "fd00:5::2/64"),),
                        (SeedRoute("default6", "fd00:5::1"), SeedRoute("198.18.7.0/24", "198.18.8.1")))
    net = yaml.safe_load(seed_files(config)["network-config"])["ethernets"]
    assert net["eth1"]["routes"] == [{"to": "::/0", "via": "fd00:5::1"}]
    assert net["eth0"]["routes"] == [{"to": "198.18.7.0/24", "via": "198.18.8.1"}]  # first NIC
    assert "addresses" not in net["eth0"]


def test_seed_config_refuses_a_netns_node() -> None:
    lab = vnet.load(str(GOLDEN / "router-vm" / "lab.yaml"))
    with pytest.raises(ValueError, match="gw is a netns node"):
        seed_config(lab, "gw")


# --- the ISO volume ------------------------------------------------------------------------------


def _read_iso(path: Path) -> tuple[str, dict[str, bytes], dict[str, bytes]]:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        rock_ridge: dict[str, bytes] = {}
        joliet: dict[str, bytes] = {}
        for name in cloudinit.SEED_FILES:
            for store, key in ((rock_ridge, "rr_path"), (joliet, "joliet_path")):
                out = io.BytesIO()
                iso.get_file_from_iso_fp(out, **{key: f"/{name}"})
                store[name] = out.getvalue()
        assert iso.has_rock_ridge() and iso.has_joliet()
        return label, rock_ridge, joliet
    finally:
        iso.close()


def test_seed_iso_reads_back(tmp_path: Path) -> None:
    _, files = _files(GOLDEN / "router-vm")
    path = tmp_path / "seed.iso"
    write_seed(files, path)
    label, rock_ridge, joliet = _read_iso(path)
    assert label == "cidata"
    expected = {name: text.encode() for name, text in files.items()}
    assert rock_ridge == expected
    assert joliet == expected
    assert os.listdir(tmp_path) == ["seed.iso"]  # the temporary file was renamed, not left behind


def test_seed_iso_bytes_do_not_depend_on_the_clock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, files = _files(GOLDEN / "single-nic")
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    first = cloudinit.seed_image(files)
    monkeypatch.setattr(time, "time", lambda: 1_800_000_123.0)
    second = cloudinit.seed_image(files)
    assert first == second
    # The volume creation date (PVD offset 813) is the fixed epoch, 2000-01-01 00:00:00 UTC.
    assert first[0x8000 + 813:0x8000 + 813 + 14] == b"20000101000000"
    monkeypatch.undo()
    assert cloudinit.seed_image(files) == first
    assert time.time() > cloudinit.SEED_EPOCH  # pycdlib's clock was given back


def test_seed_iso_changes_with_content() -> None:
    assert cloudinit.seed_image({"meta-data": "a\n"}) != cloudinit.seed_image({"meta-data": "b\n"})


@pytest.mark.skipif(shutil.which("blkid") is None, reason="blkid is not installed")
def test_blkid_sees_the_cidata_label(tmp_path: Path) -> None:
    path = tmp_path / "seed.iso"
    write_seed(seed_files(BASE), path)
    done = subprocess.run(["blkid", "-p", "-o", "export", str(path)], capture_output=True, text=True,
                          check=True)
    fields = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert fields["TYPE"] == "iso9660"
    assert fields["LABEL"] == "cidata"


@pytest.mark.skipif(shutil.which("isoinfo") is None, reason="isoinfo is not installed")
def test_isoinfo_lists_the_rock_ridge_names(tmp_path: Path) -> None:
    path = tmp_path / "seed.iso"
    write_seed(seed_files(BASE), path)
    done = subprocess.run(["isoinfo", "-R", "-f", "-i", str(path)], capture_output=True, text=True,
                          check=True)
    assert sorted(done.stdout.split()) == ["/meta-data", "/network-config", "/user-data"]


def test_seed_drive_args_escape_commas() -> None:
    assert cloudinit.seed_drive_args("/run/vnet/a,b/seed.iso") == [
        "-drive", "file=/run/vnet/a,,b/seed.iso,format=raw,if=virtio,id=vnet-seed,readonly=on"]

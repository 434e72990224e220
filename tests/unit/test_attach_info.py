"""`vnet attach-info`: TAP names, MACs, QEMU arguments and libvirt XML for `kind: tap` nodes.

Expectations are computed from the compiler (the Tap resources `vnet apply` would create) and
from the lab's interfaces, never hard-coded: a change of naming must keep both in step.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

import vnet
from vnet.attach_info import (
    DEFAULT_QUEUES,
    AttachInfoError,
    attach_info,
    format_text,
    libvirt_interface,
    qemu_args,
)
from vnet.cli import cli, main
from vnet.mechanisms.kernel.resources import Tap
from vnet.pipeline.compile import compile_lab

REPO = Path(__file__).resolve().parents[2]
TAP_EXTERNAL = str(REPO / "topologies" / "tap-external.yaml")


@pytest.fixture(scope="module")
def lab() -> vnet.Lab:
    return vnet.load(TAP_EXTERNAL)


def compiled_taps(lab: vnet.Lab) -> dict[str, Tap]:
    """Tap resources by their ifalias (`vnet:<lab>:<node>:<iface>`)."""
    return {r.end.alias: r for r in compile_lab(lab).resources.values() if isinstance(r, Tap)}


@pytest.mark.parametrize("node", ["ext1", "ext2", "ext3"])
def test_names_and_macs_are_what_apply_creates(lab: vnet.Lab, node: str) -> None:
    info = attach_info(lab, node, vhost=False)
    taps = compiled_taps(lab)
    interfaces = lab.interfaces_of(node)
    assert [i.iface for i in info.interfaces] == [i.name for i in interfaces]
    for item, iface in zip(info.interfaces, interfaces, strict=True):
        tap = taps[f"vnet:{lab.name}:{node}:{iface.name}"]
        assert item.tap == tap.end.name
        assert item.tap_mac == tap.end.mac
        assert item.mac == iface.mac  # the guest's MAC is the interface's, not the TAP's
        assert item.mac != item.tap_mac
        assert item.addresses == tuple(str(a) for a in iface.addresses)
        assert (info.owner, info.group) == (tap.owner, tap.group)
        assert len(item.tap) <= 15


def test_single_queue_qemu_args(lab: vnet.Lab) -> None:
    [item] = attach_info(lab, "ext2", vhost=False).interfaces
    assert item.queues == 1
    assert item.qemu_args == (
        "-netdev", f"tap,id=vnet-eth0,ifname={item.tap},script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=vnet-eth0,id=vnet-eth0-nic,mac={item.mac}")


def test_multi_queue_and_vhost(lab: vnet.Lab) -> None:
    info = attach_info(lab, "ext1", vhost=True)
    assert info.multi_queue and info.vhost
    [item] = info.interfaces
    netdev, device = item.qemu_args[1], item.qemu_args[3]
    assert netdev.endswith(f",vhost=on,queues={DEFAULT_QUEUES}")
    assert device.endswith(f",mq=on,vectors={2 * DEFAULT_QUEUES + 2}")
    six = attach_info(lab, "ext1", queues=6, vhost=False).interfaces[0]
    assert "vhost" not in six.qemu_args[1]
    assert six.qemu_args[1].endswith(",queues=6") and six.qemu_args[3].endswith(",mq=on,vectors=14")
    assert '<driver name="vhost" queues="6" />' in six.libvirt_xml


def test_queues_need_a_multi_queue_node(lab: vnet.Lab) -> None:
    with pytest.raises(AttachInfoError, match="does not have multi-queue TAPs") as caught:
        attach_info(lab, "ext2", queues=2)
    assert caught.value.exit_code == 65


def test_mtu_reaches_the_guest(lab: vnet.Lab) -> None:
    [item] = attach_info(lab, "ext3", vhost=False).interfaces
    assert item.mtu == 9000
    assert item.qemu_args[3].endswith(",host_mtu=9000")
    assert '<mtu size="9000" />' in item.libvirt_xml


def test_libvirt_xml(lab: vnet.Lab) -> None:
    [item] = attach_info(lab, "ext1", vhost=False).interfaces
    root = ET.fromstring(item.libvirt_xml)
    assert (root.tag, root.get("type")) == ("interface", "ethernet")
    target = root.find("target")
    assert target is not None and target.attrib == {"dev": item.tap, "managed": "no"}
    mac, model, driver = root.find("mac"), root.find("model"), root.find("driver")
    assert mac is not None and mac.get("address") == item.mac
    assert model is not None and model.get("type") == "virtio"
    assert driver is not None and driver.get("queues") == str(DEFAULT_QUEUES)
    assert ET.fromstring(libvirt_interface("vt0", "02:00:00:00:00:01")).find("driver") is None


def test_vhost_is_probed_when_not_given(lab: vnet.Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    for present in (True, False):
        monkeypatch.setattr(os.path, "exists", lambda path, present=present: present)
        assert attach_info(lab, "ext2").vhost is present


def test_qemu_ids_start_with_a_letter() -> None:
    args = qemu_args("0.100", "vt0", "02:00:00:00:00:01")  # interface names may start with a digit
    assert args[1].startswith("tap,id=vnet-0.100,")


@pytest.mark.parametrize(("node", "message", "hint"), [
    ("nope", "`nope` is not a node of lab tapext", "tap nodes: ext1, ext2, ext3"),
    ("probe", "`probe` is a netns node: it has no TAP devices", "`kind: tap`"),
])
def test_errors(lab: vnet.Lab, node: str, message: str, hint: str) -> None:
    with pytest.raises(AttachInfoError) as caught:
        attach_info(lab, node)
    assert caught.value.message == message
    assert hint in caught.value.hint
    assert caught.value.exit_code == 65


def test_a_vm_node_is_started_by_vnet() -> None:
    quickstart = vnet.load(str(REPO / "topologies" / "quickstart.yaml"))
    with pytest.raises(AttachInfoError, match="vm node: vnet starts its guest itself") as caught:
        attach_info(quickstart, "vm1")
    assert "kind: tap" in caught.value.hint
    with pytest.raises(AttachInfoError, match="`nope` is not a node") as caught:
        attach_info(quickstart, "nope")
    assert caught.value.hint == "the lab has no `kind: tap` nodes"


def test_text_report(lab: vnet.Lab) -> None:
    info = attach_info(lab, "ext1", vhost=False)
    text = format_text(info)
    item = info.interfaces[0]
    assert text.splitlines()[0] == ("lab tapext, node ext1: 1 TAP(s), openable by uid 64055, gid 64055, "
                                    "multi-queue")
    assert f"eth0: TAP {item.tap}, guest MAC {item.mac}, addresses 198.18.40.11/24" in text
    assert "    " + " ".join(item.qemu_args) in text


# --- the command ---------------------------------------------------------------------------------


def test_cli_text() -> None:
    result = CliRunner().invoke(cli, ["attach-info", TAP_EXTERNAL, "ext3"])
    assert result.exit_code == 0, result.output
    lab = vnet.load(TAP_EXTERNAL)
    tap = compiled_taps(lab)["vnet:tapext:ext3:eth0"]
    mac = lab.interfaces[("ext3", "eth0")].mac
    assert f"eth0: TAP {tap.end.name}, guest MAC {mac}, MTU 9000" in result.output
    assert "<interface type=\"ethernet\">" in result.output


def test_cli_json() -> None:
    result = CliRunner().invoke(cli, ["attach-info", TAP_EXTERNAL, "ext1", "--json", "--queues", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    lab = vnet.load(TAP_EXTERNAL)
    assert data["node"] == "ext1" and data["multi_queue"] is True
    [iface] = data["interfaces"]
    assert iface["tap"] == compiled_taps(lab)["vnet:tapext:ext1:eth0"].end.name
    assert iface["queues"] == 2
    assert iface["qemu_args"][1].split(",")[:3] == ["tap", "id=vnet-eth0", f"ifname={iface['tap']}"]


def test_cli_not_a_tap_node_is_a_vnet_error() -> None:
    result = CliRunner().invoke(cli, ["attach-info", TAP_EXTERNAL, "probe"])
    assert isinstance(result.exception, AttachInfoError)  # `main` turns it into exit 65


def test_cli_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    for args, code in ((["attach-info", TAP_EXTERNAL, "probe"], 65),
                       (["attach-info", TAP_EXTERNAL, "nope"], 65),
                       (["attach-info", TAP_EXTERNAL, "ext1", "--queues", "0"], 2),
                       (["attach-info", TAP_EXTERNAL, "ext2"], 0)):
        with pytest.raises(SystemExit) as caught:
            main(args)
        assert caught.value.code == code, args
    err = capsys.readouterr().err
    assert ("error: `probe` is a netns node: it has no TAP devices\n"
            "    hint: attach-info is for `kind: tap` nodes") in err

"""VM image files: the path policy, the checks at `validate`, disk formats and `resolve_image`.

The golden files (tests/golden/bad/image-*.yaml) pin the diagnostics' text; these tests pin the
policy around them: what is accepted, what is refused, and what the launcher gets.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import vnet
from vnet.errors import Diagnostic, TopologyError
from vnet.topology import diagnose, images
from vnet.topology.checks import CHECKS
from vnet.topology.checks.images import check_images
from vnet.topology.images import (
    HINT_MISSING,
    ImageFile,
    ImageProblem,
    ResolvedImage,
    inspect_image,
    resolve_image,
)

QCOW2 = b"QFI\xfb\x00\x00\x00\x03" + bytes(64)
RAW = b"\xeb\x63\x90" + bytes(509) + b"\x55\xaa"  # an MBR boot sector


def lab_text(image: str, name: str = "img") -> str:
    return (f"name: {name}\nswitches:\n  sw1: {{type: linux}}\nnodes:\n  vm1: {{kind: vm, image: {image}}}\n"
            "links:\n  - endpoints: [vm1:eth0, sw1]\n")


def write_lab(directory: Path, image: str) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "lab.yaml"
    path.write_text(lab_text(image))
    return str(path)


def problems(path: str) -> list[Diagnostic]:
    lab, diagnostics = diagnose(path)
    assert lab is None or not any(d.is_error for d in diagnostics)
    return [d for d in diagnostics if d.is_error]


def codes(path: str) -> list[tuple[str, str]]:
    return [(d.attr, d.code) for d in problems(path)]


# --- accepted ------------------------------------------------------------------------------------


def test_kernel_and_initrd_resolve_to_absolute_paths(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / "vmlinuz").write_bytes(b"kernel")
    (tmp_path / "boot" / "initrd.img").write_bytes(b"initrd")
    path = write_lab(tmp_path, '{kernel: boot/vmlinuz, initrd: "./boot/initrd.img", append: "quiet"}')
    lab = vnet.load(path)
    image = resolve_image(lab, "vm1")
    assert image == ResolvedImage("kernel", kernel=str(tmp_path / "boot" / "vmlinuz"),
                                  initrd=str(tmp_path / "boot" / "initrd.img"), append="quiet")
    assert image.qemu_args() == ["-kernel", image.kernel, "-initrd", image.initrd, "-append", "quiet"]


@pytest.mark.parametrize(("content", "fmt"), [(QCOW2, "qcow2"), (RAW, "raw"), (b"", "raw")])
def test_disk_format_comes_from_the_header(tmp_path: Path, content: bytes, fmt: str) -> None:
    (tmp_path / "disk.img").write_bytes(content)  # the name says nothing: the header decides
    lab = vnet.load(write_lab(tmp_path, "{disk: disk.img}"))
    image = resolve_image(lab, "vm1")
    assert (image.kind, image.disk, image.disk_format) == ("disk", str(tmp_path / "disk.img"), fmt)
    [option] = image.qemu_args()[1:]
    assert f"format={fmt}," in option
    assert option.endswith(",snapshot=on")  # the user's image is never written


def test_drive_option_escapes_commas(tmp_path: Path) -> None:
    image = ResolvedImage("disk", disk="/srv/a,b.qcow2", disk_format="qcow2")
    assert image.qemu_args("d0") == [
        "-drive", "file=/srv/a,,b.qcow2,format=qcow2,if=virtio,id=d0,snapshot=on"]


def test_tiny_has_no_files() -> None:
    lab = vnet.load(str(Path(__file__).resolve().parents[2] / "topologies" / "quickstart.yaml"))
    image = resolve_image(lab, "vm1")
    assert image == ResolvedImage("tiny")
    assert image.qemu_args() == []


def test_absolute_paths_are_used_as_written(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "disk.qcow2").write_bytes(QCOW2)
    os.symlink(elsewhere / "disk.qcow2", elsewhere / "link.qcow2")
    for written in ("disk.qcow2", "link.qcow2"):
        lab = vnet.load(write_lab(tmp_path / "labs", f"{{disk: {elsewhere / written}}}"))
        assert resolve_image(lab, "vm1").disk == str(elsewhere / "disk.qcow2")


def test_symlinks_and_dotdot_that_stay_inside_are_fine(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "disk.raw").write_bytes(RAW)
    os.symlink("images/disk.raw", tmp_path / "current.raw")
    for written in ("current.raw", "images/../current.raw", f"../{tmp_path.name}/images/disk.raw"):
        lab = vnet.load(write_lab(tmp_path, f"{{disk: {written}}}"))
        assert resolve_image(lab, "vm1").disk == str(tmp_path / "images" / "disk.raw")


def test_a_topology_directory_reached_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "disk.raw").write_bytes(RAW)
    os.symlink(real, tmp_path / "alias")
    path = write_lab(tmp_path / "alias", "{disk: disk.raw}")
    assert codes(path) == []


def test_a_bare_file_name_resolves_against_the_current_directory(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "disk.raw").write_bytes(RAW)
    write_lab(tmp_path, "{disk: disk.raw}")
    monkeypatch.chdir(tmp_path)
    lab = vnet.load("lab.yaml")
    assert lab.file == "lab.yaml"
    assert resolve_image(lab, "vm1").disk == str(tmp_path / "disk.raw")
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    result = inspect_image("lab.yaml", "disk", "disk.raw")  # a file without directory: cwd
    assert isinstance(result, ImageProblem) and result.code == "image-missing"


# --- refused -------------------------------------------------------------------------------------


def test_each_problem_is_reported_once_at_its_field(tmp_path: Path) -> None:
    path = write_lab(tmp_path / "lab", "{kernel: nope, initrd: ../outside.img}")
    (tmp_path / "outside.img").write_bytes(b"x")
    assert codes(path) == [("nodes.vm1.image.kernel", "image-missing"),
                           ("nodes.vm1.image.initrd", "image-outside")]
    assert sum(check is check_images for check in CHECKS) == 1


def test_a_path_through_a_file_is_missing_not_unreadable(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz").write_bytes(b"k")
    result = inspect_image(str(tmp_path / "lab.yaml"), "kernel", "vmlinuz/inner")
    assert isinstance(result, ImageProblem) and result.code == "image-missing", result
    assert "a part of its path is a file" in result.message and result.hint == HINT_MISSING


def test_a_symlink_leading_outside_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.raw"
    outside.write_bytes(RAW)
    labdir = tmp_path / "lab"
    labdir.mkdir()
    os.symlink(outside, labdir / "disk.raw")
    os.symlink(tmp_path, labdir / "up")
    assert codes(write_lab(labdir, "{disk: disk.raw}")) == [("nodes.vm1.image.disk", "image-outside")]
    assert codes(write_lab(labdir, "{disk: up/outside.raw}")) == [("nodes.vm1.image.disk", "image-outside")]
    os.symlink(tmp_path / "gone.raw", labdir / "dangling.raw")  # dangling, and outside
    assert codes(write_lab(labdir, "{disk: dangling.raw}")) == [("nodes.vm1.image.disk", "image-outside")]


def test_directories_devices_and_fifos_are_not_images(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")  # must be refused without being opened (an open would block)
    for written, what in (("fifo", "a FIFO"), ("/dev/null", "a character device"), (".", "a directory")):
        result = inspect_image(str(tmp_path / "lab.yaml"), "disk", written)
        assert isinstance(result, ImageProblem)
        assert (result.code, what in result.message) == ("image-not-file", True)


def test_an_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "vmlinuz").write_bytes(b"k")
    real_open = os.open

    def refuse(path: str, flags: int, *args: int) -> int:
        if str(path).endswith("vmlinuz"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refuse)
    [diagnostic] = problems(write_lab(tmp_path, "{kernel: vmlinuz}"))
    assert (diagnostic.code, diagnostic.attr) == ("image-unreadable", "nodes.vm1.image.kernel")
    assert "Permission denied" in diagnostic.message
    assert diagnostic.hint == images.HINT_UNREADABLE


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_for_real(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz").write_bytes(b"k")
    (tmp_path / "vmlinuz").chmod(0)
    assert codes(write_lab(tmp_path, "{kernel: vmlinuz}")) == [("nodes.vm1.image.kernel", "image-unreadable")]


@pytest.mark.parametrize(("header", "name"), [
    (b"QED\x00" + bytes(60), "QED"), (b"KDMV" + bytes(60), "VMDK"), (b"vhdxfile" + bytes(60), "VHDX"),
    (b"conectix" + bytes(60), "VHD"), (bytes(64) + b"\x7f\x10\xda\xbe", "VDI"),
    (b"# Disk DescriptorFile\n", "VMDK descriptor")])
def test_foreign_disk_formats_are_refused(tmp_path: Path, header: bytes, name: str) -> None:
    (tmp_path / "disk.qcow2").write_bytes(header)
    [diagnostic] = problems(write_lab(tmp_path, "{disk: disk.qcow2}"))
    assert diagnostic.code == "image-format"
    assert f"is a {name} image" in diagnostic.message
    assert diagnostic.hint == "convert it: qemu-img convert -O qcow2 disk.qcow2 disk-converted.qcow2"


def test_foreign_magic_in_a_kernel_is_not_a_disk_problem(tmp_path: Path) -> None:
    (tmp_path / "vmlinuz").write_bytes(b"KDMV")
    assert isinstance(inspect_image(str(tmp_path / "lab.yaml"), "kernel", "vmlinuz"), ImageFile)


def test_resolve_rechecks_files_that_changed_since_validate(tmp_path: Path) -> None:
    (tmp_path / "disk.raw").write_bytes(RAW)
    lab = vnet.load(write_lab(tmp_path, "{disk: disk.raw}"))
    (tmp_path / "disk.raw").unlink()
    with pytest.raises(TopologyError) as caught:
        resolve_image(lab, "vm1")
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.file, diagnostic.line, diagnostic.attr, diagnostic.code) == (
        lab.file, 5, "nodes.vm1.image.disk", "image-missing")
    assert caught.value.exit_code == 65


def test_resolve_refuses_a_node_that_is_not_a_vm(tmp_path: Path) -> None:
    lab = vnet.load(str(Path(__file__).resolve().parents[2] / "topologies" / "quickstart.yaml"))
    netns_node = next(n for n, spec in lab.topology.nodes.items() if spec.kind == "netns")
    with pytest.raises(ValueError, match="not a vm"):
        resolve_image(lab, netns_node)


def test_detect_format() -> None:
    assert images.detect_format(QCOW2) == "qcow2"
    assert images.detect_format(b"QFI") == "raw"  # a short file is raw
    assert images.detect_format(RAW) == "raw"
    assert images.foreign_format(QCOW2) is None

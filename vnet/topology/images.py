"""Image files of `vm` nodes: where they are, whether vnet may use them, and a disk's format.

The policy (README, "VM images"):

- A relative path is relative to the directory of the topology file, as the file was named
  (`Lab.file`). A file named without a directory (`lab.yaml`) resolves against the current
  directory, which is also what a lab whose `file` is a pseudo-name such as `<string>` gets.
- A relative path must stay inside that directory: a `..` that climbs out of it, or a symlink
  on the way that leads outside it, is refused. An absolute path is used as written (symlinks
  followed): the user chose it.
- The file must exist, be a regular file once symlinks are followed (not a directory or a
  device) and be readable by this process.
- A disk's format comes from its first bytes: the qcow2 magic `QFI\\xfb`, else raw. QEMU is
  always told `format=` and never probes (a raw image whose first bytes look like a qcow2
  header must not be opened as one). Formats vnet recognises but does not boot (QED, VMDK,
  VDI, VHD, VHDX) are refused with a `qemu-img convert` hint.
- Disks are attached with `snapshot=on`: the user's image is never written; what the guest
  writes goes to a temporary overlay and is gone when the VM stops.

`inspect_image` is side-effect free (a stat and a read-only open of each file) and fast: it
runs at `vnet validate`. `resolve_image` is what the launcher asks for.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vnet.errors import Diagnostic, TopologyError
from vnet.topology.model import DiskImage, Image, KernelImage, VmNode
from vnet.topology.source import Path, format_path

if TYPE_CHECKING:
    from vnet.topology.lab import Lab

ImageKind = Literal["tiny", "kernel", "disk"]
DiskFormat = Literal["qcow2", "raw"]

QCOW2_MAGIC = b"QFI\xfb"
HEADER_BYTES = 72
# Formats QEMU would have to probe or that vnet does not attach: (offset, magic, name).
FOREIGN_MAGICS: tuple[tuple[int, bytes, str], ...] = (
    (0, b"QED\x00", "QED"),
    (0, b"KDMV", "VMDK"),
    (0, b"# Disk DescriptorFile", "VMDK descriptor"),
    (0, b"vhdxfile", "VHDX"),
    (0, b"conectix", "VHD"),
    (64, b"\x7f\x10\xda\xbe", "VDI"),
)



@dataclass(frozen=True)
class MemoryFloor:
    """The least `memory` (MiB) a VM with this image form is let boot with, and why."""

    mib: int
    why: str


# Below these a guest does not come up, and apply would wait for an agent that never answers.
# tiny: booted under TCG with the image built from Debian 12's cloud kernel (6.1.0-57-cloud-amd64)
# and four NICs, the tiny guest panics at 72 and 74 MiB ("System is deadlocked on memory",
# unpacking the initramfs) and boots at 76 MiB with 7 MiB free; 96 leaves room for a larger
# kernel or initramfs after an update, and for the probes. The other forms boot what the user
# brings, which vnet cannot measure: 128 MiB is a conservative floor for a distribution kernel.
MEMORY_FLOORS: dict[ImageKind, MemoryFloor] = {
    "tiny": MemoryFloor(96, "the tiny image (the host's cloud kernel and a busybox initramfs) runs out of "
                            "memory while it boots below that"),
    "kernel": MemoryFloor(128, "vnet cannot know what your kernel and initrd need, so it asks for a "
                               "conservative floor: a distribution kernel with its initramfs needs about "
                               "that much"),
    "disk": MemoryFloor(128, "vnet cannot know what your disk image needs, so it asks for a conservative "
                             "floor: a cloud image with systemd and cloud-init needs at least that much, "
                             "often 256 MiB or more"),
}


def image_kind(image: Image) -> ImageKind:
    if isinstance(image, KernelImage):
        return "kernel"
    return "disk" if isinstance(image, DiskImage) else "tiny"


HINT_MISSING = "image paths are relative to the topology file; vnet downloads nothing"
HINT_OUTSIDE = ("keep the image (not a symlink to it) in the topology's directory or below it, "
                "or write its absolute path: absolute paths are used as written")
HINT_UNREADABLE = "make the file readable by the user running vnet"

_FILE_TYPES: tuple[tuple[int, str], ...] = (
    (stat.S_IFDIR, "a directory"),
    (stat.S_IFBLK, "a block device"),
    (stat.S_IFCHR, "a character device"),
    (stat.S_IFIFO, "a FIFO"),
    (stat.S_IFSOCK, "a socket"),
)


@dataclass(frozen=True)
class ImageProblem:
    """Why an image file cannot be used: a diagnostic code, a message and a hint."""

    field: str  # kernel | initrd | disk
    code: str
    message: str
    hint: str


@dataclass(frozen=True)
class ImageFile:
    """An image file vnet may use."""

    field: str  # kernel | initrd | disk
    written: str  # as the topology spells it
    path: str  # absolute, symlinks resolved: what QEMU is given
    disk_format: DiskFormat | None = None  # disks only


@dataclass(frozen=True)
class ResolvedImage:
    """What the launcher boots. `tiny` carries no paths: the launcher builds that image itself."""

    kind: ImageKind
    kernel: str | None = None
    initrd: str | None = None
    append: str = ""
    disk: str | None = None
    disk_format: DiskFormat | None = None

    def qemu_args(self, drive_id: str = "vnet-disk0") -> list[str]:
        """QEMU arguments for a kernel or disk image (none for `tiny`)."""
        if self.kind == "kernel":
            assert self.kernel is not None
            args = ["-kernel", self.kernel]
            if self.initrd is not None:
                args += ["-initrd", self.initrd]
            return args + (["-append", self.append] if self.append else [])
        if self.kind == "disk":
            assert self.disk is not None and self.disk_format is not None
            # snapshot=on: the user's image is never written (README "VM images").
            return ["-drive", f"file={qemu_escape(self.disk)},format={self.disk_format},"
                              f"if=virtio,id={drive_id},snapshot=on"]
        return []


def qemu_escape(value: str) -> str:
    """A value inside a QEMU `key=value,...` option: commas are doubled."""
    return value.replace(",", ",,")


def image_fields(image: Image) -> tuple[tuple[str, str], ...]:
    """(field, path as written) of each file an image names, in field order."""
    if isinstance(image, KernelImage):
        return (("kernel", image.kernel),) + ((("initrd", image.initrd),) if image.initrd else ())
    if isinstance(image, DiskImage):
        return (("disk", image.disk),)
    return ()


def topology_dir(lab_file: str) -> str:
    """The directory relative image paths start from, as named (`""`: the current directory)."""
    return os.path.dirname(lab_file)


def shown_path(lab_file: str, written: str) -> str:
    """Where a path was looked for, spelled relative to how the topology file was named."""
    return os.path.normpath(os.path.join(topology_dir(lab_file), written))


def inspect_image(lab_file: str, field: str, written: str) -> ImageFile | ImageProblem:
    """Check one image file against the policy; never raises for a bad file."""
    shown = shown_path(lab_file, written)
    outside = _escapes(lab_file, field, written, shown)
    if outside is not None:
        return outside
    try:
        info = os.stat(shown)
    except FileNotFoundError:
        return ImageProblem(field, "image-missing",
                            f"{field} image `{written}` does not exist (looked at {shown})", HINT_MISSING)
    except NotADirectoryError:  # `vmlinuz/x` where vmlinuz is a file: missing, not unreadable
        return ImageProblem(field, "image-missing",
                            f"{field} image `{written}` does not exist: a part of its path is a file, "
                            f"not a directory (looked at {shown})", HINT_MISSING)
    except OSError as exc:
        return _unreadable(field, written, shown, exc)
    if not stat.S_ISREG(info.st_mode):
        what = next((name for kind, name in _FILE_TYPES if stat.S_IFMT(info.st_mode) == kind),
                    "not a regular file")
        return ImageProblem(field, "image-not-file",
                            f"{field} image `{written}` is {what} (looked at {shown})",
                            f"point `{field}` at a regular file; directories and devices are not images")
    try:
        header = read_header(shown)
    except OSError as exc:
        return _unreadable(field, written, shown, exc)
    path = os.path.realpath(shown)
    if field != "disk":
        return ImageFile(field, written, path)
    foreign = foreign_format(header)
    if foreign is not None:
        stem, suffix = os.path.splitext(written)
        target = f"{stem}-converted.qcow2" if suffix == ".qcow2" else f"{stem}.qcow2"
        return ImageProblem(field, "image-format",
                            f"disk image `{written}` is a {foreign} image; vnet boots qcow2 and raw disks",
                            f"convert it: qemu-img convert -O qcow2 {written} {target}")
    return ImageFile(field, written, path, detect_format(header))


def _escapes(lab_file: str, field: str, written: str, shown: str) -> ImageProblem | None:
    """A relative path that leaves the topology's directory, by `..` or through a symlink."""
    if os.path.isabs(written):
        return None
    base = os.path.abspath(topology_dir(lab_file) or ".")
    if not _inside(base, os.path.normpath(os.path.join(base, written))):
        reason = "`..` leads out of it"
    elif not _inside(os.path.realpath(base), os.path.realpath(shown)):
        reason = "a symlink on the way leads out of it"
    else:
        return None
    return ImageProblem(field, "image-outside",
                        f"{field} image `{written}` is outside the topology's directory ({reason})",
                        HINT_OUTSIDE)


def _inside(directory: str, path: str) -> bool:
    return os.path.commonpath([directory, path]) == directory


def _unreadable(field: str, written: str, shown: str, exc: OSError) -> ImageProblem:
    reason = exc.strerror or str(exc)
    hint = {errno.EACCES: HINT_UNREADABLE, errno.EPERM: HINT_UNREADABLE,
            errno.ELOOP: f"its path is a loop of symbolic links: point `{field}` at the image file"}
    return ImageProblem(field, "image-unreadable",
                        f"cannot read {field} image `{written}`: {reason} (looked at {shown})",
                        hint.get(exc.errno or 0, "check the file and the file system it is on"))


def read_header(path: str) -> bytes:
    """The first bytes of a file, opened read-only (and non-blocking, should it be swapped for a FIFO)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        return os.read(fd, HEADER_BYTES)
    finally:
        os.close(fd)


def detect_format(header: bytes) -> DiskFormat:
    """qcow2 when the header starts with its magic, else raw (QEMU is never left to probe)."""
    return "qcow2" if header.startswith(QCOW2_MAGIC) else "raw"


def foreign_format(header: bytes) -> str | None:
    """The name of an image format vnet recognises but does not attach, or None."""
    for offset, magic, name in FOREIGN_MAGICS:
        if header[offset:offset + len(magic)] == magic:
            return name
    return None


def resolve_image(lab: Lab, node: str) -> ResolvedImage:
    """The image of vm node `node`, its files checked again now (they may have changed since
    `validate`). Raises TopologyError with located diagnostics when a file cannot be used."""
    spec = lab.topology.nodes[node]
    if not isinstance(spec, VmNode):
        raise ValueError(f"{node} is a {spec.kind} node, not a vm")
    image = spec.image
    if not isinstance(image, KernelImage | DiskImage):
        return ResolvedImage("tiny")
    found: dict[str, ImageFile] = {}
    problems: list[Diagnostic] = []
    for field, written in image_fields(image):
        result = inspect_image(lab.file, field, written)
        if isinstance(result, ImageProblem):
            problems.append(image_diagnostic(lab, node, result))
        else:
            found[field] = result
    if problems:
        raise TopologyError(problems)
    if isinstance(image, DiskImage):
        disk = found["disk"]
        return ResolvedImage("disk", disk=disk.path, disk_format=disk.disk_format)
    initrd = found.get("initrd")
    return ResolvedImage("kernel", kernel=found["kernel"].path,
                         initrd=initrd.path if initrd else None, append=image.append)


def image_diagnostic(lab: Lab, node: str, problem: ImageProblem) -> Diagnostic:
    """A problem as a diagnostic located at `nodes.<node>.image.<field>` of the lab's file."""
    path: Path = ("nodes", node, "image", problem.field)
    mark = lab.source.locate(path)
    return Diagnostic(lab.file, mark.line, mark.column, problem.code, problem.message,
                      format_path(path), problem.hint)

"""The tiny image builder (vnet.vm.tiny) on a fake /boot + /lib/modules tree, and its kernel command line."""

from __future__ import annotations

import gzip
import lzma
import struct
import threading
import time
from pathlib import Path

import pytest

from vnet.errors import EX_UNAVAILABLE, UnavailableError
from vnet.vm import tiny
from vnet.vm.tiny import GuestConfig, GuestNic, TinyInputs

RELEASE = "6.1.0-10-cloud-amd64"
# modules.dep as Debian writes it: a module's dependencies, the one to load last first
DEP = {
    "kernel/drivers/virtio/virtio_ring.ko": [],
    "kernel/drivers/virtio/virtio.ko": ["kernel/drivers/virtio/virtio_ring.ko"],
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko": [],
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko": [],
    "kernel/drivers/virtio/virtio_pci.ko": [
        "kernel/drivers/virtio/virtio_pci_legacy_dev.ko", "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
        "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"],
    "kernel/net/core/failover.ko": [],
    "kernel/drivers/net/net_failover.ko": ["kernel/net/core/failover.ko"],
    "kernel/drivers/net/virtio_net.ko.xz": [
        "kernel/drivers/net/net_failover.ko", "kernel/net/core/failover.ko",
        "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"],
    "kernel/drivers/char/virtio_console.ko": [
        "kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"],
    "kernel/drivers/block/virtio_blk.ko": ["kernel/drivers/virtio/virtio.ko"],
}
LOAD_ORDER = ["virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
              "failover", "net_failover", "virtio_net", "virtio_console"]


def module_content(path: str) -> bytes:
    return b"\x7fELF fake module " + tiny.module_name(path).encode() + b"\n"


def write_modules(root: Path, release: str, dep: dict[str, list[str]], builtin: tuple[str, ...] = ()) -> Path:
    moddir = root / "lib" / "modules" / release
    for path in dep:
        target = moddir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        data = module_content(path)
        target.write_bytes(lzma.compress(data) if path.endswith(".xz") else data)
    lines = [f"{path}: {' '.join(deps)}".rstrip() for path, deps in dep.items()]
    (moddir / "modules.dep").write_text("\n".join(lines) + "\n")
    (moddir / "modules.builtin").write_text("".join(f"{b}\n" for b in builtin))
    return moddir


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A fake host: two cloud kernels, a newer generic one, modules for all of them, a busybox."""
    (tmp_path / "boot").mkdir()
    for release in ("6.1.0-9-cloud-amd64", RELEASE, "6.5.0-1-amd64"):
        (tmp_path / "boot" / f"vmlinuz-{release}").write_bytes(b"kernel " + release.encode())
        write_modules(tmp_path, release, DEP)
    (tmp_path / "boot" / "vmlinuz-7.0.0-1-cloud-amd64").write_bytes(b"no modules dir: ignored")
    (tmp_path / "busybox").write_bytes(b"fake static busybox")
    return tmp_path


def inputs_of(host: Path) -> TinyInputs:
    return tiny.find_inputs(host / "boot", host / "lib" / "modules", host / "busybox")


def read_newc(data: bytes) -> list[dict[str, object]]:
    """The entries of a newc archive (a small independent reader, to check the writer)."""
    archive, pos = gzip.decompress(data), 0
    entries: list[dict[str, object]] = []
    while True:
        fields = [int(archive[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        assert archive[pos: pos + 6] == b"070701"
        namesize, filesize = fields[11], fields[6]
        name = archive[pos + 110: pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = archive[pos: pos + filesize]
        pos += filesize + (-filesize % 4)
        if name == "TRAILER!!!":
            return entries
        entries.append({"name": name, "ino": fields[0], "mode": fields[1], "uid": fields[2], "gid": fields[3],
                        "mtime": fields[5], "rdev": (fields[9], fields[10]), "data": body})


def test_chooses_newest_cloud_kernel_with_modules(host: Path) -> None:
    inputs = inputs_of(host)
    assert inputs.release == RELEASE
    assert inputs.kernel == host / "boot" / f"vmlinuz-{RELEASE}"
    assert inputs.busybox == host / "busybox"


def test_falls_back_to_a_kernel_that_provides_virtio_net(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    no_virtio: dict[str, list[str]] = {"kernel/fs/ext4.ko": []}
    for release, dep in (("6.1.0-1-amd64", DEP), ("6.9.0-1-amd64", no_virtio)):
        (tmp_path / "boot" / f"vmlinuz-{release}").write_bytes(b"k")
        write_modules(tmp_path, release, dep)
    (tmp_path / "busybox").write_bytes(b"bb")
    assert inputs_of(tmp_path).release == "6.1.0-1-amd64"


def test_modules_in_dependency_order(host: Path) -> None:
    names = [tiny.module_name(m.name) for m in inputs_of(host).modules]
    assert names == LOAD_ORDER
    for k, name in enumerate(names):  # every dependency is loaded before the module needing it
        path = next(p for p in DEP if tiny.module_name(p) == name)
        assert all(names.index(tiny.module_name(d)) < k for d in DEP[path])


def test_builtin_modules_are_skipped(tmp_path: Path) -> None:
    moddir = write_modules(tmp_path, RELEASE, DEP, builtin=("kernel/drivers/virtio/virtio.ko",
                                                            "kernel/drivers/virtio/virtio_ring.ko"))
    names = [tiny.module_name(m.name) for m in tiny.resolve_modules(moddir)]
    assert names == [n for n in LOAD_ORDER if n not in ("virtio", "virtio_ring")]


def test_build_is_deterministic(host: Path, tmp_path: Path) -> None:
    inputs = inputs_of(host)
    first, second = tiny.build(inputs, tmp_path / "c1"), tiny.build(inputs, tmp_path / "c2")
    assert first.built and second.built
    assert first.key == second.key == tiny.cache_key(inputs)
    assert first.initrd.read_bytes() == second.initrd.read_bytes()
    assert first.kernel.read_bytes() == inputs.kernel.read_bytes()
    assert first.initrd.parent == tmp_path / "c1" / first.key


def test_cached_key_is_reused(host: Path, tmp_path: Path) -> None:
    first = tiny.build(inputs_of(host), tmp_path / "cache")
    again = tiny.build(inputs_of(host), tmp_path / "cache")
    assert (first.built, again.built) == (True, False)
    assert again.initrd == first.initrd
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [".lock", first.key]  # no temp left


def test_kernel_change_gives_a_new_key(host: Path, tmp_path: Path) -> None:
    first = tiny.build(inputs_of(host), tmp_path / "cache")
    (host / "boot" / f"vmlinuz-{RELEASE}").write_bytes(b"a patched kernel")
    second = tiny.build(inputs_of(host), tmp_path / "cache")
    assert second.built and second.key != first.key
    assert second.kernel.read_bytes() == b"a patched kernel"
    assert first.kernel.read_bytes() != b"a patched kernel"  # the old key is kept as it was


def test_cache_modes(host: Path, tmp_path: Path) -> None:
    image = tiny.build(inputs_of(host), tmp_path / "a" / "cache")
    for directory in (tmp_path / "a", tmp_path / "a" / "cache", image.initrd.parent):
        assert directory.stat().st_mode & 0o777 == 0o755
    for file in (image.kernel, image.initrd):
        assert file.stat().st_mode & 0o777 == 0o644


def test_initramfs_contents(host: Path, tmp_path: Path) -> None:
    inputs = inputs_of(host)
    initrd = tiny.build(inputs, tmp_path / "cache").initrd.read_bytes()
    entries = {str(e["name"]): e for e in read_newc(initrd)}
    names = list(entries)
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert all(e["mtime"] == e["uid"] == e["gid"] == 0 for e in entries.values())
    assert [e["ino"] for e in entries.values()] == list(range(1, len(entries) + 1))
    assert entries["init"]["data"] == tiny.init_script() and entries["init"]["mode"] == 0o100755
    assert entries["bin/busybox"]["data"] == b"fake static busybox"
    assert entries["bin/sh"] == {**entries["bin/sh"], "mode": 0o120777, "data": b"busybox"}
    assert entries["dev/console"]["mode"] == 0o020600 and entries["dev/console"]["rdev"] == (5, 1)
    assert entries["tmp"]["mode"] == 0o041777
    for name in ("proc", "sys", "dev", "run", "usr/sbin"):
        assert entries[name]["mode"] == 0o040755
    assert entries["lib/modules/order"]["data"] == "".join(f"{n}\n" for n in LOAD_ORDER).encode()
    # the .ko.xz module is stored decompressed
    assert entries["lib/modules/virtio_net.ko"]["data"] == module_content("virtio_net.ko")


def test_concurrent_builds_make_one_image(host: Path, tmp_path: Path) -> None:
    inputs, results = inputs_of(host), []
    threads = [threading.Thread(target=lambda: results.append(tiny.build(inputs, tmp_path / "c")))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.key for r in results}) == 1
    assert sum(r.built for r in results) == 1


def assert_unavailable(exc: UnavailableError, *words: str) -> None:
    assert exc.exit_code == EX_UNAVAILABLE == 69
    assert "linux-image-cloud-amd64 busybox-static" in exc.hint
    for word in words:
        assert word in exc.message


def test_no_kernel(tmp_path: Path) -> None:
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / "vmlinuz-6.1.0-1-cloud-amd64").write_bytes(b"k")  # but no modules dir
    (tmp_path / "busybox").write_bytes(b"bb")
    with pytest.raises(UnavailableError) as caught:
        inputs_of(tmp_path)
    assert_unavailable(caught.value, "no guest kernel", "virtio_net")


def test_no_busybox(host: Path) -> None:
    with pytest.raises(UnavailableError) as caught:
        tiny.find_inputs(host / "boot", host / "lib" / "modules", host / "missing-busybox")
    assert_unavailable(caught.value, "busybox", "missing-busybox")


def test_dynamic_busybox_is_refused(host: Path) -> None:
    elf = bytearray(64 + 56)
    elf[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", elf, 32, 64)  # e_phoff
    struct.pack_into("<HH", elf, 54, 56, 1)  # e_phentsize, e_phnum
    struct.pack_into("<I", elf, 64, 3)  # PT_INTERP: needs a dynamic loader
    (host / "busybox").write_bytes(bytes(elf))
    with pytest.raises(UnavailableError) as caught:
        inputs_of(host)
    assert_unavailable(caught.value, "statically linked busybox")


def test_missing_module(tmp_path: Path) -> None:
    dep = {p: d for p, d in DEP.items() if "virtio_console" not in p}
    moddir = write_modules(tmp_path, RELEASE, dep)
    with pytest.raises(UnavailableError) as caught:
        tiny.resolve_modules(moddir)
    assert_unavailable(caught.value, "virtio_console")


def test_zstd_module_is_a_clear_error(tmp_path: Path) -> None:
    dep = {p.replace("virtio_console.ko", "virtio_console.ko.zst"): d for p, d in DEP.items()}
    moddir = write_modules(tmp_path, RELEASE, dep)
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / f"vmlinuz-{RELEASE}").write_bytes(b"k")
    (tmp_path / "busybox").write_bytes(b"bb")
    assert moddir.is_dir()
    with pytest.raises(UnavailableError, match="zstd"):
        tiny.build(inputs_of(tmp_path), tmp_path / "cache")


def test_gzip_module(tmp_path: Path) -> None:
    path = tmp_path / "virtio_net.ko.gz"
    path.write_bytes(gzip.compress(b"module"))
    assert tiny._module_bytes(path) == b"module"


def test_kernel_cmdline() -> None:
    config = GuestConfig(
        hostname="vm1",
        nics=(GuestNic("52:54:00:AA:00:01", "eth0", 1500), GuestNic("52:54:00:aa:00:02", "eth1")),
        addresses=(("eth0", "198.18.10.1/24"), ("eth1", "fd00:10::1/64")),
        routes=(("default", "198.18.10.254"), ("default6", "fd00:10::fe"), ("198.19.0.0/16", "198.18.10.2")),
        forwarding=True)
    assert tiny.kernel_cmdline(config) == (
        "console=ttyS0 quiet panic=-1 vnet.host=vm1 vnet.nic=52:54:00:aa:00:01,eth0,1500"
        " vnet.nic=52:54:00:aa:00:02,eth1 vnet.addr=eth0,198.18.10.1/24 vnet.addr=eth1,fd00:10::1/64"
        " vnet.route=default,198.18.10.254 vnet.route=default6,fd00:10::fe"
        " vnet.route=198.19.0.0/16,198.18.10.2 vnet.forward=1")
    assert tiny.kernel_cmdline(GuestConfig("h")) == "console=ttyS0 quiet panic=-1 vnet.host=h"


@pytest.mark.parametrize("config", [
    GuestConfig("bad host"),
    GuestConfig("vm", nics=(GuestNic("52:54:00:aa:00", "eth0"),)),
    GuestConfig("vm", nics=(GuestNic("52:54:00:aa:00:01", "a-very-long-interface-name"),)),
    GuestConfig("vm", nics=(GuestNic("52:54:00:aa:00:01", "eth0", 20),)),
    GuestConfig("vm", addresses=(("eth0", "198.18.0.1"),)),
    GuestConfig("vm", addresses=(("eth0", "$(reboot)/24"),)),
    GuestConfig("vm", routes=(("default", "not-an-address"),)),
    GuestConfig("vm", nics=tuple(GuestNic(f"52:54:00:aa:00:{i:02x}", f"eth{i}") for i in range(80))),
])
def test_kernel_cmdline_rejects_malformed_fields(config: GuestConfig) -> None:
    with pytest.raises(ValueError):
        tiny.kernel_cmdline(config)


def test_real_host_image(tmp_path: Path) -> None:
    """The real tiny image from this host's files (no timing assertion: the time is printed)."""
    try:
        inputs = tiny.find_inputs()
        inputs.kernel.open("rb").close()
    except (UnavailableError, PermissionError) as exc:
        pytest.skip(f"no usable host kernel/busybox: {exc}")
    start = time.perf_counter()
    image = tiny.build(inputs, tmp_path / "cache")
    elapsed = time.perf_counter() - start
    size = image.initrd.stat().st_size
    print(f"\ntiny image for {inputs.release}: built in {elapsed:.2f} s, initrd {size} bytes")
    assert image.built and image.initrd.stat().st_size > 0

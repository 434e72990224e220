"""The built-in `image: tiny` guest: the host's Debian kernel plus a busybox initramfs, built locally.

Nothing is downloaded: the kernel, its virtio modules and a static busybox come from the host's own
packages (`apt-get install linux-image-cloud-amd64 busybox-static`). The initramfs is written here
in Python (newc cpio, gzip), deterministically: the same inputs give byte-identical files, so the
cache key (a hash of every input) names one immutable directory `<cache>/<key>/` holding `vmlinuz`
and `initrd.img`. Old keys are never removed automatically (each is ~15-20 MB, one per kernel or
busybox update); delete the cache directory to reclaim the space.

The guest is configured from the kernel command line (`kernel_cmdline`), read by `guest/init`.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import importlib.resources
import ipaddress
import lzma
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vnet.errors import NotPermittedError, UnavailableError
from vnet.vm import elf

DEFAULT_CACHE = Path("/var/cache/vnet/tiny")
BUILDER_VERSION = "vnet-tiny-2"  # bump when the layout of the image changes: it is part of the key
INSTALL_HINT = "apt-get install linux-image-cloud-amd64 busybox-static netcat-openbsd"
# Host programs copied in with their shared libraries when the host has them: BusyBox has no UDP
# client or server, and verify's UDP rows need both (OpenBSD netcat: `-u`, `-l -k`).
GUEST_PROGRAMS = (("usr/bin/nc.openbsd", (Path("/usr/bin/nc.openbsd"), Path("/bin/nc.openbsd"))),)
# virtio_pci first so that the devices exist when virtio_net / virtio_console bind to them
NEEDED_MODULES = ("virtio_pci", "virtio_net", "virtio_console")
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"),
                      Path("/usr/lib/initramfs-tools/bin/busybox"))
DIRS = ("bin", "dev", "etc", "lib", "lib/modules", "proc", "run", "sbin", "sys", "usr", "usr/bin", "usr/sbin")
MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")


@dataclass(frozen=True)
class TinyInputs:
    kernel: Path
    release: str
    modules: tuple[Path, ...]  # in insmod order
    busybox: Path
    extras: tuple[tuple[str, Path], ...] = ()  # (path in the image, host file): programs and libraries


@dataclass(frozen=True)
class TinyImage:
    kernel: Path
    initrd: Path
    key: str
    built: bool  # made by this call (False: found in the cache)


@dataclass(frozen=True)
class GuestNic:
    mac: str
    ifname: str
    mtu: int | None = None


@dataclass(frozen=True)
class GuestConfig:
    hostname: str
    nics: tuple[GuestNic, ...] = ()
    addresses: tuple[tuple[str, str], ...] = ()  # (ifname, cidr), IPv4 or IPv6
    routes: tuple[tuple[str, str], ...] = ()  # (destination CIDR or "default" / "default6", via)
    forwarding: bool = False


# ---------------------------------------------------------------------------------------------
# Finding the inputs


def _version_key(release: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", release))


def module_name(path: str) -> str:
    """`kernel/drivers/net/virtio_net.ko.xz` -> `virtio_net` (the kernel treats - and _ alike)."""
    base = path.rsplit("/", 1)[-1]
    for suffix in MODULE_SUFFIXES:
        base = base.removesuffix(suffix)
    return base.replace("-", "_")


def _read_dep(moddir: Path) -> dict[str, tuple[str, list[str]]]:
    """modules.dep as {name: (relative path, [dependency paths])}."""
    deps: dict[str, tuple[str, list[str]]] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in (moddir / "modules.dep").read_text().splitlines():
            path, sep, rest = line.partition(":")
            if sep:
                deps[module_name(path)] = (path.strip(), rest.split())
    return deps


def _read_builtin(moddir: Path) -> set[str]:
    with contextlib.suppress(FileNotFoundError):
        return {module_name(line) for line in (moddir / "modules.builtin").read_text().split()}
    return set()


def _candidate_kernels(boot: Path, modules_root: Path) -> list[tuple[Path, str]]:
    """(image, release) for every readable-looking kernel with a modules dir, newest first."""
    found = []
    for image in boot.glob("vmlinuz-*"):
        release = image.name.removeprefix("vmlinuz-")
        if image.is_file() and (modules_root / release).is_dir():
            found.append((image, release))
    return sorted(found, key=lambda item: _version_key(item[1]), reverse=True)


def _choose_kernel(boot: Path, modules_root: Path) -> tuple[Path, str]:
    kernels = _candidate_kernels(boot, modules_root)
    for image, release in kernels:  # Debian's cloud kernel: small, virtio drivers as modules
        if release.endswith("-cloud-amd64"):
            return image, release
    for image, release in kernels:
        moddir = modules_root / release
        if "virtio_net" in _read_dep(moddir) or "virtio_net" in _read_builtin(moddir):
            return image, release
    raise UnavailableError(
        f"no guest kernel for image 'tiny': no {boot}/vmlinuz-<release> with {modules_root}/<release>"
        " providing virtio_net", hint=INSTALL_HINT)


def resolve_modules(moddir: Path, needed: tuple[str, ...] = NEEDED_MODULES) -> tuple[Path, ...]:
    """The module files for `needed` and their dependencies, each after what it depends on."""
    deps, builtin = _read_dep(moddir), _read_builtin(moddir)
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str, wanted_by: str) -> None:
        if name in seen or name in builtin:
            return
        seen.add(name)
        if name not in deps:
            raise UnavailableError(
                f"kernel modules in {moddir} lack {name} (needed by {wanted_by}; not in modules.dep"
                " or modules.builtin)", hint=INSTALL_HINT)
        path, requires = deps[name]
        for dep in reversed(requires):  # modules.dep lists the last-to-load dependency first
            visit(module_name(dep), name)
        if not (moddir / path).is_file():
            raise UnavailableError(f"module file {moddir / path} is missing", hint=INSTALL_HINT)
        order.append(moddir / path)

    for name in needed:
        visit(name, "the tiny guest")
    return tuple(order)


def _find_busybox(busybox: Path | None) -> Path:
    candidates = (busybox,) if busybox is not None else BUSYBOX_CANDIDATES
    for path in candidates:
        if path.is_file() and not elf.is_dynamic(path):
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise UnavailableError(f"no statically linked busybox for image 'tiny' (looked at {looked})",
                           hint=INSTALL_HINT)


def _extras(programs: tuple[tuple[str, tuple[Path, ...]], ...]) -> tuple[tuple[str, Path], ...]:
    """The guest programs the host has, each with its interpreter and libraries."""
    found: dict[str, Path] = {}
    for target, candidates in programs:
        program = next((p for p in candidates if p.is_file()), None)
        if program is None:
            continue
        try:
            libraries = elf.closure(program)
        except elf.ElfError:
            continue  # without its libraries it would not run: leave it out
        found[target] = program.resolve()
        found.update((path.lstrip("/"), host) for path, host in libraries)
    return tuple(sorted(found.items()))


def find_inputs(boot: Path = Path("/boot"), modules_root: Path = Path("/lib/modules"),
                busybox: Path | None = None,
                programs: tuple[tuple[str, tuple[Path, ...]], ...] = GUEST_PROGRAMS) -> TinyInputs:
    """The host files the tiny image is made of; UnavailableError says what is missing."""
    kernel, release = _choose_kernel(boot, modules_root)
    modules = resolve_modules(modules_root / release)
    return TinyInputs(kernel=kernel, release=release, modules=modules, busybox=_find_busybox(busybox),
                      extras=_extras(programs))


# ---------------------------------------------------------------------------------------------
# Building


def init_script() -> bytes:
    return importlib.resources.files("vnet.vm").joinpath("guest/init").read_bytes()


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        raise UnavailableError(f"{path} is zstd-compressed, which vnet cannot unpack",
                               hint="use a kernel package with .ko or .ko.xz modules")
    return data


def cache_key(inputs: TinyInputs) -> str:
    """A hash of every byte that goes into the image, and of the builder's version."""
    digest = hashlib.sha256(BUILDER_VERSION.encode())
    parts = [("kernel", "", inputs.kernel), *(("module", module_name(m.name), m) for m in inputs.modules),
             ("busybox", "", inputs.busybox), *(("extra", target, host) for target, host in inputs.extras)]
    for label, name, path in parts:
        data = path.read_bytes()
        digest.update(f"\0{label} {name} {len(data)}\0".encode())
        digest.update(data)
    script = init_script()
    digest.update(f"\0init {len(script)}\0".encode() + script)
    return digest.hexdigest()[:24]


def _cpio_entry(ino: int, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> bytes:
    """One newc entry: uid/gid 0, mtime 0, nlink 1 (2 for dirs), fixed inode: reproducible."""
    nlink = 2 if mode & 0o170000 == 0o040000 else 1
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
    head = b"070701" + b"".join(b"%08X" % v for v in fields) + name.encode() + b"\0"
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def initramfs_entries(inputs: TinyInputs) -> Iterator[tuple[str, int, bytes, tuple[int, int]]]:
    """(path, mode, data, rdev) for everything in the initramfs, parents before children."""
    yield from ((d, 0o040755, b"", (0, 0)) for d in DIRS)
    yield "tmp", 0o041777, b"", (0, 0)
    yield "dev/console", 0o020600, b"", (5, 1)  # init's stdio, before devtmpfs is mounted
    yield "init", 0o100755, init_script(), (0, 0)
    yield "bin/busybox", 0o100755, inputs.busybox.read_bytes(), (0, 0)
    yield "bin/sh", 0o120777, b"busybox", (0, 0)  # the rest: `busybox --install -s` at boot
    names = [module_name(m.name) for m in inputs.modules]
    for name, path in zip(names, inputs.modules, strict=True):
        yield f"lib/modules/{name}.ko", 0o100644, _module_bytes(path), (0, 0)
    yield "lib/modules/order", 0o100644, "".join(f"{n}\n" for n in names).encode(), (0, 0)
    yield from _extra_entries(inputs.extras)


def _extra_entries(extras: tuple[tuple[str, Path], ...]) -> Iterator[tuple[str, int, bytes, tuple[int, int]]]:
    """Programs and libraries, their directories first; a file already in (the loader under two
    names) is a symlink to the first copy."""
    made = set(DIRS)
    first: dict[Path, str] = {}
    for target, host in extras:
        parents = Path(target).parents
        for parent in reversed([str(p) for p in parents if str(p) != "."]):
            if parent not in made:
                made.add(parent)
                yield parent, 0o040755, b"", (0, 0)
        if host in first:
            yield target, 0o120777, ("/" + first[host]).encode(), (0, 0)
            continue
        first[host] = target
        yield target, 0o100755, host.read_bytes(), (0, 0)


def initramfs(inputs: TinyInputs) -> bytes:
    """The gzip-compressed newc archive, byte-identical for identical inputs."""
    entries = sorted(initramfs_entries(inputs), key=lambda e: e[0].split("/"))
    archive = b"".join(_cpio_entry(i + 1, n, m, d, r) for i, (n, m, d, r) in enumerate(entries))
    archive += _cpio_entry(0, "TRAILER!!!", 0)
    return gzip.compress(archive, compresslevel=6, mtime=0)


def _make_dirs(path: Path) -> None:
    """mkdir -p with mode 0755 for the directories created here (whatever the umask)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
            directory.chmod(0o755)


def _complete(target: Path) -> bool:
    return (target / "vmlinuz").is_file() and (target / "initrd.img").is_file()


@contextlib.contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    """One builder at a time per cache directory (across processes)."""
    with open(cache / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_image(inputs: TinyInputs, cache: Path, key: str) -> None:
    """Build in a temp dir next to the target and rename it into place atomically."""
    for stale in cache.glob(".tmp-*"):  # left by a build that crashed; we hold the lock
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=cache))
    try:
        shutil.copyfile(inputs.kernel, tmp / "vmlinuz")
        (tmp / "initrd.img").write_bytes(initramfs(inputs))
        for name in ("vmlinuz", "initrd.img"):
            (tmp / name).chmod(0o644)
        tmp.chmod(0o755)
        tmp.rename(cache / key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build(inputs: TinyInputs, cache: Path = DEFAULT_CACHE) -> TinyImage:
    """`<cache>/<key>/{vmlinuz,initrd.img}`, built unless that key is already cached."""
    try:
        key = cache_key(inputs)
        target = cache / key
        image = TinyImage(kernel=target / "vmlinuz", initrd=target / "initrd.img", key=key, built=False)
        if _complete(target):
            return image
        _make_dirs(cache)
        with _cache_lock(cache):
            if _complete(target):  # another process built it while we waited for the lock
                return image
            shutil.rmtree(target, ignore_errors=True)  # incomplete: cannot come from a rename
            _write_image(inputs, cache, key)
    except PermissionError as exc:
        raise NotPermittedError(f"cannot build the tiny image: {exc}", hint="run vnet as root") from exc
    return TinyImage(kernel=image.kernel, initrd=image.initrd, key=key, built=True)


def ensure_tiny(cache: Path = DEFAULT_CACHE) -> TinyImage:
    """The tiny image for this host's kernel and busybox, from the cache or built now."""
    return build(find_inputs(), cache)


def locate_tiny(cache: Path = DEFAULT_CACHE) -> TinyImage:
    """Where the tiny image for this host's kernel and busybox is (or will be, once built):
    what a guest's command line names, known without building it."""
    key = cache_key(find_inputs())
    return TinyImage(kernel=cache / key / "vmlinuz", initrd=cache / key / "initrd.img", key=key, built=False)


# ---------------------------------------------------------------------------------------------
# The guest's configuration, on the kernel command line (read by guest/init)

_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")
_IFNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
COMMAND_LINE_MAX = 2047  # x86 COMMAND_LINE_SIZE is 2048 including the NUL


def _check(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"invalid {what} for the tiny guest: {value!r}")
    return value


def _nic_param(nic: GuestNic) -> str:
    mac = _check(_MAC, nic.mac.lower(), "MAC address")
    value = f"{mac},{_check(_IFNAME, nic.ifname, 'interface name')}"
    if nic.mtu is not None:
        if not 68 <= nic.mtu <= 65535:
            raise ValueError(f"invalid MTU for the tiny guest: {nic.mtu}")
        value += f",{nic.mtu}"
    return f"vnet.nic={value}"


def _route_param(destination: str, via: str) -> str:
    if destination not in ("default", "default6"):
        destination = str(ipaddress.ip_network(destination, strict=False))
    return f"vnet.route={destination},{ipaddress.ip_address(via)}"


def kernel_cmdline(config: GuestConfig) -> str:
    """The kernel command line that configures the tiny guest; ValueError for a malformed field."""
    hostname = _check(_HOSTNAME, config.hostname, "hostname")
    words = ["console=ttyS0", "quiet", "panic=-1", f"vnet.host={hostname}"]
    words += [_nic_param(nic) for nic in config.nics]
    for ifname, cidr in config.addresses:
        if "/" not in cidr:
            raise ValueError(f"invalid address for the tiny guest (needs a prefix length): {cidr!r}")
        words.append(f"vnet.addr={_check(_IFNAME, ifname, 'interface name')},{ipaddress.ip_interface(cidr)}")
    words += [_route_param(destination, via) for destination, via in config.routes]
    if config.forwarding:
        words.append("vnet.forward=1")
    line = " ".join(words)
    if len(line) > COMMAND_LINE_MAX:
        raise ValueError(f"the tiny guest's kernel command line is {len(line)} bytes"
                         f" (at most {COMMAND_LINE_MAX})")
    return line

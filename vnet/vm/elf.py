"""Just enough of ELF to copy a host program into the tiny image with what it needs to run:
its interpreter (PT_INTERP) and the shared libraries it names (DT_NEEDED), found the way the
dynamic loader finds them on Debian (the multiarch directories, then /lib and /usr/lib).
64-bit little- and big-endian ELF only; nothing is executed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NEEDED, DT_STRTAB = 1, 5
LIBRARY_DIRS = (Path("/lib/x86_64-linux-gnu"), Path("/usr/lib/x86_64-linux-gnu"), Path("/lib64"),
                Path("/usr/lib64"), Path("/lib"), Path("/usr/lib"))


class ElfError(ValueError):
    """Not a 64-bit ELF file, or a library it needs was not found."""


@dataclass(frozen=True)
class _Segment:
    kind: int
    offset: int
    vaddr: int
    size: int


def _header(data: bytes) -> tuple[str, list[_Segment]]:
    if len(data) < 64 or data[:4] != b"\x7fELF" or data[4] != 2:
        raise ElfError("not a 64-bit ELF file")
    endian = "<" if data[5] == 1 else ">"
    phoff, = struct.unpack_from(endian + "Q", data, 32)
    phentsize, phnum = struct.unpack_from(endian + "HH", data, 54)
    segments = []
    for k in range(phnum):
        at = phoff + k * phentsize
        kind, _flags, offset, vaddr, _paddr, size = struct.unpack_from(endian + "IIQQQQ", data, at)
        segments.append(_Segment(kind, offset, vaddr, size))
    return endian, segments


def is_dynamic(path: Path) -> bool:
    """True for an ELF executable with an interpreter: it needs shared libraries to run."""
    with path.open("rb") as handle:
        head = handle.read(1 << 16)
    try:
        return any(s.kind == PT_INTERP for s in _header(head)[1])
    except ElfError:
        return False


def interpreter(path: Path) -> str | None:
    data = path.read_bytes()
    segment = next((s for s in _header(data)[1] if s.kind == PT_INTERP), None)
    return data[segment.offset:segment.offset + segment.size].rstrip(b"\0").decode() if segment else None


def needed(path: Path) -> list[str]:
    """The DT_NEEDED names of an ELF file, in order."""
    data = path.read_bytes()
    endian, segments = _header(data)
    dynamic = next((s for s in segments if s.kind == PT_DYNAMIC), None)
    if dynamic is None:
        return []
    entries = [struct.unpack_from(endian + "qQ", data, dynamic.offset + k * 16)
               for k in range(dynamic.size // 16)]
    strtab = next((value for tag, value in entries if tag == DT_STRTAB), None)
    if strtab is None:
        return []
    # DT_STRTAB is an address: find the loadable segment that maps it to a file offset.
    base = next((s.offset + strtab - s.vaddr for s in segments
                 if s.kind == PT_LOAD and s.vaddr <= strtab < s.vaddr + s.size), strtab)
    return [data[base + value:data.index(b"\0", base + value)].decode()
            for tag, value in entries if tag == DT_NEEDED]


def closure(program: Path, dirs: tuple[Path, ...] = LIBRARY_DIRS) -> list[tuple[str, Path]]:
    """(path in the guest, host file) for the interpreter and every library `program` needs,
    transitively, each once; the guest path is where the loader will look for it."""
    found: dict[str, Path] = {}
    loader = interpreter(program)
    if loader is not None:
        found[loader] = Path(loader).resolve()
    todo = [program]
    while todo:
        for name in needed(todo.pop()):
            location = next((d / name for d in dirs if (d / name).exists()), None)
            if location is None:
                raise ElfError(f"{program} needs {name}, which is in none of {', '.join(map(str, dirs))}")
            if str(location) not in found:
                found[str(location)] = location.resolve()
                todo.append(location.resolve())
    return sorted(found.items())

"""Other processes on this host, as /proc shows them."""

from __future__ import annotations

from pathlib import Path


def command_name(pid: int) -> str:
    """The process's name (`comm`: `qemu-vm1`, `libvirtd`), or `gone` once it has exited."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "gone"

"""Hostile topology documents for test_hostile_input.py: each with the exit codes `vnet apply`
may end with. 65 (bad topology) for everything vnet must refuse; 69 for documents that are valid
but whose free-text values (a TAP owner, OVS other_config, a kernel command line) carry shell
syntax: they reach a name lookup, OVSDB or QEMU's argv as plain strings and fail there (user
unknown, no OVSDB, not a kernel), never a shell. Every payload touches CANARY if a shell ever
ran it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REFUSED = frozenset({65})
FAILS_LATER = frozenset({69})


@dataclass(frozen=True)
class Hostile:
    name: str
    text: str
    codes: frozenset[int] = REFUSED
    encoding: str = "utf-8"

    def write(self, path: Path) -> Path:
        path.write_bytes(self.text.encode(self.encoding, "surrogatepass"))
        return path


def base(lab: str) -> dict[str, Any]:
    return {"name": lab, "switches": {"hbr": {"type": "linux"}},
            "nodes": {"h1": {"kind": "netns", "routes": [{"to": "default", "via": "198.18.30.254"}]},
                      "h2": {"kind": "netns"}},
            "networks": {"pool": {"subnet": "198.18.31.0/24"}},
            "links": [{"endpoints": ["h1:eth0", "hbr"], "ip": "198.18.30.1/24"},
                      {"endpoints": ["h2:eth0", "hbr"], "network": "pool"}],
            "expect": [{"from": "h1", "to": "h2"}]}


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=1 << 30)


def _rename(section: str, old: str) -> Callable[[dict[str, Any], str], None]:
    def edit(doc: dict[str, Any], value: str) -> None:
        doc[section][value] = doc[section].pop(old)
    return edit


def _set(*path: str | int) -> Callable[[dict[str, Any], str], None]:
    def edit(doc: dict[str, Any], value: str) -> None:
        target: Any = doc
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return edit


# Every place a name or address is written: a hostile string there must be refused (65).
NAME_FIELDS: dict[str, Callable[[dict[str, Any], str], None]] = {
    "lab name": _set("name"),
    "node name": _rename("nodes", "h2"),
    "switch name": _rename("switches", "hbr"),
    "pool name": _rename("networks", "pool"),
    "interface": _set("links", 0, "endpoints", 0),
    "switch endpoint": _set("links", 1, "endpoints", 1),
    "address": _set("links", 0, "ip"),
    "network": _set("links", 1, "network"),
    "route gateway": _set("nodes", "h1", "routes", 0, "via"),
    "expect target": _set("expect", 0, "to"),
}


def shell_payloads(canary: Path) -> dict[str, str]:
    return {"$()": f"x$(touch {canary})", "backticks": f"x`touch {canary}`", ";": f"x;touch {canary}",
            "|": f"x|touch {canary}", "&&": f"x&&touch {canary}", "newline": f"x\ntouch {canary}",
            "quotes": f"x' \"; touch {canary}; '"}


UNICODE = {
    "cyrillic a": "l\u0430b", "zero-width space": "h1\u200b", "right-to-left override": "br\u202e0",
    "combining accent": "eth0\u0301", "emoji": "h\U0001f525", "fullwidth": "\uff48\uff11",
    "trailing newline": "h1\n", "line separator": "h1\u2028x", "next line": "h1\x85", "escape": "h1\x1b[31m",
    "tab": "h\t1", "bidi isolate": "\u2066h1\u2069", "nbsp": "h\u00a01",
}


def in_name_fields(lab: str, values: dict[str, str], label: str) -> list[Hostile]:
    out = []
    for field, edit in NAME_FIELDS.items():
        for what, value in values.items():
            doc = base(lab)
            edit(doc, value if field != "interface" else f"h1:{value}")
            out.append(Hostile(f"{label} {what} in the {field}", _dump(doc)))
    return out


def free_text(lab: str, canary: Path, directory: Path) -> list[Hostile]:
    """Valid documents with shell syntax where vnet takes free text: it must stay text."""
    (directory / "vmlinuz").write_bytes(b"not a kernel")
    out = []
    for what, payload in shell_payloads(canary).items():
        tap = base(lab)
        tap["nodes"]["t1"] = {"kind": "tap", "owner": payload}
        tap["links"].append({"endpoints": ["t1:eth0", "hbr"]})
        ovs = base(lab)
        ovs["switches"]["hbr"] = {"type": "ovs", "other_config": {"mac-table-size": payload}}
        vm = base(lab)
        vm["nodes"]["vm1"] = {"kind": "vm", "image": {"kernel": "vmlinuz", "append": payload}}
        vm["links"].append({"endpoints": ["vm1:eth0", "hbr"]})
        out += [Hostile(f"shell {what} in a TAP owner", _dump(tap), FAILS_LATER),
                Hostile(f"shell {what} in OVS other_config", _dump(ovs), FAILS_LATER),
                Hostile(f"shell {what} in a kernel command line", _dump(vm), FAILS_LATER)]
    return out


def _image_files(directory: Path) -> None:
    """Image files and links next to the topology: inside, outside, chains, a FIFO, a device."""
    (directory / "sub").mkdir()
    (directory / "sub" / "kernel").write_bytes(b"k")
    (directory / "sub" / "disk.img").write_bytes(b"\0" * 512)
    (directory / "escape").symlink_to("/etc/passwd")
    (directory / "chain1").symlink_to("chain2")
    (directory / "chain2").symlink_to("../../../../../../etc/hostname")
    (directory / "etcdir").symlink_to("/etc")
    (directory / "zero").symlink_to("/dev/zero")
    (directory / "loop").symlink_to("loop")
    os.mkfifo(directory / "fifo")


IMAGE_PATHS = {
    "parent": {"kernel": "../x"}, "parent after a subdirectory": {"kernel": "sub/../../x"},
    "dot parent": {"kernel": "./../sub/kernel"}, "deep parent": {"disk": "sub/" + "../" * 40 + "etc/passwd"},
    "symlink out": {"kernel": "escape"}, "symlink chain out": {"disk": "chain1"},
    "symlinked directory": {"kernel": "etcdir/passwd"}, "device via symlink": {"disk": "zero"},
    "symlink loop": {"kernel": "loop"}, "FIFO": {"disk": "fifo"}, "directory": {"kernel": "sub"},
    "missing": {"kernel": "sub/nothing"}, "newline": {"kernel": "sub/kernel\n"},
    "very long": {"kernel": "a/" * 5000 + "k"}, "initrd out": {"kernel": "sub/kernel", "initrd": "../../x"},
}


def image_paths(lab: str, directory: Path) -> list[Hostile]:
    _image_files(directory)
    out = []
    for what, image in IMAGE_PATHS.items():
        doc = base(lab)
        doc["nodes"]["vm1"] = {"kind": "vm", "image": image}
        doc["links"].append({"endpoints": ["vm1:eth0", "hbr"]})
        out.append(Hostile(f"image path: {what}", _dump(doc)))
    return out


def structural(lab: str) -> list[Hostile]:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join([f'*{chr(97 + k)}'] * 10)}]\n" for k in range(8))
    long_name = copy.deepcopy(base(lab))
    long_name["nodes"]["h" * 100_000] = {"kind": "netns"}
    return [Hostile("alias bomb", f"name: {lab}\n" + bomb),
            Hostile("recursive alias", f"name: {lab}\nnodes: &n {{h1: *n}}\n"),
            Hostile("deep nesting", f"name: {lab}\nnodes: " + "[" * 5000 + "]" * 5000 + "\n"),
            Hostile("merge key", f"name: {lab}\nd: &d {{kind: netns}}\nnodes: {{h1: {{<<: *d}}}}\n"),
            Hostile("python tag", f"name: {lab}\nnodes: !!python/object/apply:os.system [touch x]\n"),
            Hostile("two documents", f"name: {lab}\n---\nname: {lab}\n"),
            Hostile("NUL in a string", _dump({**base(lab), "name": f"{lab}\0"})),
            Hostile("100k-character node name", _dump(long_name)),
            Hostile("1 MB lab name", f"name: {'a' * 1_000_000}\n"),
            Hostile("latin-1 bytes", f"name: {lab}\nnodes: {{h\xe9: {{}}}}\n", encoding="latin-1")]


def hand_written(lab: str, canary: Path, directory: Path) -> list[Hostile]:
    return (in_name_fields(lab, shell_payloads(canary), "shell")
            + in_name_fields(lab, UNICODE, "unicode")
            + free_text(lab, canary, directory) + image_paths(lab, directory) + structural(lab))

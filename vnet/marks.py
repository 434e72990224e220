"""How vnet names and marks the host objects a lab owns (README, "How vnet changes the host").

All names are deterministic and fit IFNAMSIZ (15): a re-apply, a crash recovery and a destroy
without the topology file all find the same objects.
- the namespace of node N in lab L is `vnet-L-N`; its loopback's ifalias `vnet:L:N` is its mark;
- a device's ifalias is `vnet:L:` + what it is (`h1:eth0`, `h1:eth0:peer`, `sw1~sw2#0:sw1`, ...);
- a host-side device name is a two-letter prefix of its kind and 12 hex digits of a hash of the
  lab and its identity (`vn…` a node's veth end, `vt…` a TAP, `vb…` a switch-to-switch veth, …);
- a lab's host devices share one device group (batch deletion, `ip link show group`);
- OVS rows carry external_ids vnet-lab and vnet-key.
"""

from __future__ import annotations

import hashlib
import zlib


def netns_name(lab: str, node: str) -> str:
    return f"vnet-{lab}-{node}"


def mark(lab: str, *parts: str) -> str:
    return ":".join(("vnet", lab, *parts))


def lab_prefix(lab: str) -> str:
    """What every mark of the lab starts with."""
    return f"vnet:{lab}:"


def within(lab: str, text: str) -> str:
    """What a mark of the lab names (`h1:eth0` of `vnet:L:h1:eth0:peer`); "" if not the lab's."""
    prefix = lab_prefix(lab)
    return text.removeprefix(prefix).removesuffix(":peer") if text.startswith(prefix) else ""


def host_name(prefix: str, lab: str, *parts: str) -> str:
    digest = hashlib.blake2b("\0".join((lab, *parts)).encode(), digest_size=6).hexdigest()
    return prefix + digest


def lab_group(lab: str) -> int:
    """The device group (IFLA_GROUP) of a lab's host devices."""
    return 0x56000000 | (zlib.crc32(lab.encode()) & 0x00FFFFFF)


def holder(alias: str | None) -> str:
    """Who owns a device, from its alias, for collision messages."""
    if alias and alias.startswith("vnet:"):
        return f"vnet lab `{alias.split(':')[1]}`"
    return "something other than vnet"

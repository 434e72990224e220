"""The topology format, version 1, as a typed model (README, "The topology format").

The model checks shapes and types only; the relations between values (endpoints, addresses,
VLAN semantics) are checked in `checks.py`, where every problem can name its file and line.
The one exception is inside an `impair:` mapping (jitter against delay, the two direction
forms): checked here, a value in `defaults:` is reported once, where it is written, and never
again for each link that takes it.
Kinds are registries (`NODE_KINDS`, `SWITCH_TYPES`, `IMAGE_FORMS`), never if/elif chains.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from vnet.topology.impair import DurationValue, ImpairProblem, PercentValue, RateValue, jitter_problem

DEFAULT_MTU = 1500  # a link without `mtu`: the kernel's default for veth and TAP devices
Mtu = Annotated[StrictInt, Field(ge=68, le=65535, description="MTU in bytes (68-65535)")]
VlanId = Annotated[StrictInt, Field(ge=1, le=4094, description="802.1Q VLAN id (1-4094)")]

# `memory`: a number is MiB (as it always was); a string is a size with a binary unit, as QEMU's
# `-m` reads it (512M is 512 MiB). MB/GB are refused: they mean powers of 10 elsewhere.
MEMORY_UNITS = {"k": Fraction(1, 1024), "m": Fraction(1), "g": Fraction(1024), "t": Fraction(1024 ** 2)}
_SIZE = re.compile(r"\s*(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[a-z]*)\s*\Z", re.IGNORECASE)
MEMORY_HINT = ("memory is in MiB: `memory: 512`, or a size with a binary unit: `512M`, `512MiB`, "
               "`2G`, `2GiB`, `524288K`")


def memory_mib(value: object) -> object:
    """`512M`, `2GiB`, `1.5G` -> MiB; anything else is left to the integer check."""
    if not isinstance(value, str):
        return value
    match = _SIZE.match(value)
    if match is None:
        raise PydanticCustomError("memory_size", "`{value}` is not a size", {"value": value})
    unit = match["unit"].lower()
    if not unit:
        raise PydanticCustomError("memory_size", "`{value}` has no unit and is quoted", {"value": value})
    if unit in (f"{u}b" for u in MEMORY_UNITS):
        raise PydanticCustomError("memory_size", "`{value}`: {unit} means powers of 10 in some places and "
                                  "of 2 in others", {"value": value, "unit": match["unit"]})
    if unit not in (*MEMORY_UNITS, *(f"{u}ib" for u in MEMORY_UNITS)):
        raise PydanticCustomError("memory_size", "`{value}`: unit `{unit}` is not one of K, M, G, T, "
                                  "KiB, MiB, GiB, TiB", {"value": value, "unit": match["unit"]})
    mib = Fraction(match["number"]) * MEMORY_UNITS[unit[0]]
    if mib.denominator != 1:
        raise PydanticCustomError("memory_size", "`{value}` is not a whole number of MiB", {"value": value})
    return int(mib)


_MEMORY_SCHEMA = {
    "anyOf": [{"type": "integer", "minimum": 32, "maximum": 1_048_576},
              {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*([KkMmGgTt]([iI][bB])?)\s*$"}],
    "description": "MiB (32-1048576), or a size with a binary unit: 512M, 512MiB, 2G, 2GiB",
}
Memory = Annotated[StrictInt, BeforeValidator(memory_mib), Field(ge=32, le=1_048_576),
                   WithJsonSchema(_MEMORY_SCHEMA)]


class Spec(BaseModel):
    """Base of every topology object: unknown keys are errors, values never change after load."""

    # defer_build: a validator is built when a class is first validated (the loader validates each
    # entry on its own), not at import: the whole Topology's is never needed to load a file.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)


# --- switches ---------------------------------------------------------------------------------


class SwitchBase(Spec):
    type: str
    mtu: Mtu | None = None
    stp: StrictBool = Field(False, description="Spanning tree on this bridge")


class LinuxSwitch(SwitchBase):
    """A Linux bridge. Its name is the real bridge name (at most 15 characters)."""

    type: Literal["linux"] = "linux"
    vlan_filtering: StrictBool = Field(False, description="VLAN-aware bridge (802.1Q filtering)")
    forward_delay: Annotated[StrictFloat, Field(ge=2, le=30)] | None = Field(
        None, description="STP forward delay in seconds (2-30)")
    ageing_time: Annotated[StrictInt, Field(ge=0, le=1_000_000)] | None = Field(
        None, description="MAC ageing time in seconds")


class OvsSwitch(SwitchBase):
    """An Open vSwitch bridge. Its name is the real bridge name (at most 15 characters)."""

    type: Literal["ovs"] = "ovs"
    fail_mode: Literal["standalone", "secure"] = "standalone"
    datapath: Literal["auto", "system", "netdev"] = Field(
        "auto", description="auto: the kernel datapath when the kernel has it, else userspace")
    rstp: StrictBool = Field(False, description="Rapid spanning tree")
    other_config: dict[str, str] = Field(default_factory=dict,
                                         description="Extra Bridge other_config keys")


Switch = Annotated[LinuxSwitch | OvsSwitch, Field(discriminator="type")]
SWITCH_TYPES: dict[str, type[SwitchBase]] = {"linux": LinuxSwitch, "ovs": OvsSwitch}


# --- nodes ------------------------------------------------------------------------------------


class Route(Spec):
    to: str = Field(description="Destination CIDR, or `default`")
    via: str = Field(description="Gateway address, on a subnet of one of the node's interfaces")
    metric: Annotated[StrictInt, Field(ge=0, le=4294967295)] | None = None


class KernelImage(Spec):
    """Boot a kernel (and optional initrd) directly; paths are relative to the topology file."""

    kernel: str
    initrd: str | None = None
    append: str = ""


class DiskImage(Spec):
    """Boot a disk image (qcow2/raw); vnet adds a cloud-init NoCloud seed with its addresses."""

    disk: str


def _image_form(value: Any) -> str:
    if isinstance(value, dict):
        return "disk" if "disk" in value else "kernel"
    return "tiny"


Image = Annotated[
    Annotated[Literal["tiny"], Tag("tiny")]
    | Annotated[KernelImage, Tag("kernel")]
    | Annotated[DiskImage, Tag("disk")],
    Discriminator(_image_form),
]
IMAGE_FORMS = ("tiny", "kernel", "disk")


class NodeBase(Spec):
    kind: str
    # Whether vnet can run commands (probes) inside this kind of node.
    can_probe: ClassVar[bool] = True


class NetnsNode(NodeBase):
    """A network namespace (host or router)."""

    kind: Literal["netns"] = "netns"
    routes: tuple[Route, ...] = ()
    forwarding: StrictBool = Field(False, description="IP forwarding (a router)")


class VmNode(NodeBase):
    """A QEMU guest; each of its interfaces is a TAP device on the host."""

    kind: Literal["vm"]
    routes: tuple[Route, ...] = ()
    forwarding: StrictBool = False
    memory: Memory = 128
    vcpus: Annotated[StrictInt, Field(ge=1, le=64)] = 1
    image: Image = "tiny"
    accel: Literal["auto", "kvm", "tcg"] = Field(
        "auto", description="auto: KVM when the CPU has VT-x/AMD-V and /dev/kvm opens, else TCG")


class TapNode(NodeBase):
    """TAP devices only: the guest is started by someone else (libvirt, Proxmox, a script)."""

    kind: Literal["tap"]
    can_probe: ClassVar[bool] = False
    owner: str | int | None = Field(None, description="User allowed to open the TAPs")
    group: str | int | None = Field(None, description="Group allowed to open the TAPs")
    multi_queue: StrictBool = False


Node = Annotated[NetnsNode | VmNode | TapNode, Field(discriminator="kind")]
NODE_KINDS: dict[str, type[NodeBase]] = {"netns": NetnsNode, "vm": VmNode, "tap": TapNode}


# --- links, pools, SR-IOV, expectations -------------------------------------------------------

IpList = tuple[str | tuple[str, ...], ...]


class Policing(Spec):
    """Ingress policing on an OVS port: traffic entering the switch above `rate` is dropped."""

    rate: Annotated[StrictInt, Field(ge=1, le=4_294_967_295)] = Field(description="kbit/s")
    burst: Annotated[StrictInt, Field(ge=0, le=4_294_967_295)] = Field(0, description="kbit (0: OVS default)")


# The values' units and ranges are in vnet/topology/impair.py.
class Impairment(Spec):
    """What netem does to the packets leaving one end of a link."""

    delay: DurationValue | None = Field(None, description="Added delay: 500us, 20ms, 1.5s (at most 60 s)")
    jitter: DurationValue | None = Field(
        None, description="Random variation of the delay, up to this much either side (needs `delay`, "
                          "at most as much)")
    loss: PercentValue | None = Field(None, description="Packets dropped: 1%, 0.1%")
    rate: RateValue | None = Field(None, description="Bandwidth limit: 10mbit (bits/s), 1mbps (bytes/s)")
    duplicate: PercentValue | None = Field(None, description="Packets sent twice: 0.1%")
    corrupt: PercentValue | None = Field(None, description="Packets with a flipped bit: 0.1%")

    @model_validator(mode="after")
    def _jitter_within_delay(self) -> Self:
        problem = jitter_problem(self.delay, self.jitter)
        if problem is not None:
            raise problem.error()
        return self


IMPAIR_DIRECTIONS = ("a", "b")


class LinkImpairment(Impairment):
    """`impair:` of a link: its parameters apply both ways, or `a`/`b` give each way its own
    (`a` leaves the first endpoint, `b` the second). The two forms do not mix."""

    a: Impairment | None = Field(None, description="Packets leaving the link's first endpoint")
    b: Impairment | None = Field(None, description="Packets leaving the link's second endpoint")

    @model_validator(mode="before")
    @classmethod
    def _one_form(cls, value: Any) -> Any:
        # Before the values: with the form wrong, their own errors would only add noise.
        if isinstance(value, dict) and any(side in value for side in IMPAIR_DIRECTIONS):
            mixed = next((key for key in value if key in Impairment.model_fields), None)
            if mixed is not None:
                raise ImpairProblem(
                    "impair-direction-mixed", f"`{mixed}` beside `a`/`b`: `impair` takes parameters "
                    "for both directions, or `a:` and `b:` for each, not both",
                    f"move `{mixed}` into `a:` and/or `b:`, or drop `a`/`b` to impair both ways alike",
                    mixed).error()
        return value

    @property
    def directions(self) -> tuple[Impairment | None, Impairment | None]:
        """What leaves endpoint a and what leaves endpoint b; None: that way is not impaired."""
        if self.a is not None or self.b is not None:
            return _impaired(self.a), _impaired(self.b)
        # The parameters are validated already (as this model's): copied, not checked again.
        both = Impairment.model_construct(**{name: getattr(self, name) for name in Impairment.model_fields})
        return _impaired(both), _impaired(both)


def _impaired(side: Impairment | None) -> Impairment | None:
    """`side`, or None when it sets no parameter (`a: {}` impairs nothing)."""
    if side is None or all(getattr(side, name) is None for name in Impairment.model_fields):
        return None
    return side


class Link(Spec):
    endpoints: tuple[str, str] = Field(
        description="`node:iface`, `switch`, `sriov:<pf>/vf<n>`, `vxlan:<remote-ip>` / "
                    "`geneve:<remote-ip>` (a tunnel port on an OVS switch), or `macvlan:<host device>` "
                    "(a macvlan of a host device given to a netns node); exactly two")
    vlan: VlanId | None = Field(None, description="Access VLAN of the switch port(s)")
    trunk: tuple[VlanId, ...] | None = Field(None, description="Tagged VLANs of the switch port(s)")
    native_vlan: VlanId | None = Field(
        None, description="With `trunk`: untagged frames belong to this VLAN (OVS native-untagged)")
    ip: str | IpList | None = Field(
        None, description="Address(es) in CIDR form; on a node-to-node link one entry per node")
    network: str | tuple[str, ...] | None = Field(
        None, description="Pool(s) from `networks` to take the address(es) from")
    mtu: Mtu | None = None
    attach: Literal["veth", "internal"] = Field(
        "veth", description="How a netns node joins an OVS switch: a veth pair, or an OVS internal "
                            "port moved into its namespace")
    police: Policing | None = Field(None, description="Ingress policing of the OVS port")
    key: Annotated[StrictInt, Field(ge=0, le=16_777_215)] | None = Field(
        None, description="Tunnel key (VXLAN VNI / Geneve VNI) of a tunnel link")
    impair: LinkImpairment | None = Field(
        None, description="netem impairments (delay, jitter, loss, rate, duplicate, corrupt), both ways "
                          "or per direction (`a`, `b`); checked, not applied yet")
    state: Literal["up", "down"] = Field(
        "up", description="`down`: the link's interfaces are down (checked, not applied yet)")


class Network(Spec):
    subnet: str = Field(description="IPv4 or IPv6 subnet in CIDR form")
    gateway: str | None = Field(None, description="Address kept out of the pool (a router's)")


class VfSpec(Spec):
    mac: str | None = None
    vlan: VlanId | None = None
    qos: Annotated[StrictInt, Field(ge=0, le=7)] | None = None
    spoofchk: StrictBool | None = None
    trust: StrictBool | None = None
    min_tx_rate: Annotated[StrictInt, Field(ge=0)] | None = Field(None, description="Mbit/s")
    max_tx_rate: Annotated[StrictInt, Field(ge=0)] | None = Field(None, description="Mbit/s")
    link_state: Literal["auto", "enable", "disable"] | None = None


class PfSpec(Spec):
    num_vfs: Annotated[StrictInt, Field(ge=0, le=4096)]
    eswitch: Literal["legacy", "switchdev"] = "legacy"
    vfs: dict[int, VfSpec] = Field(default_factory=dict)


class Expectation(Spec):
    source: str = Field(alias="from", description="Node the probe is sent from")
    to: str = Field(description="Target node, or `node:iface` for one interface")
    reach: StrictBool = Field(True, description="true: must reach (TCP/UDP: `open`); false: must not")
    proto: Literal["icmp", "tcp", "udp"] = Field(
        "icmp", description="ICMP echo, a TCP connection or a UDP datagram to vnet's listener")
    port: Annotated[StrictInt, Field(ge=1, le=65535)] | None = Field(
        None, description="TCP/UDP port (default 7); vnet listens there unless something already does")
    mtu: Mtu | None = Field(
        None, description="A don't-fragment ICMP echo of this many bytes (the IP packet) must arrive")


class Defaults(Spec):
    """Values applied to every switch, node or link that has the field and does not set it."""

    mtu: Mtu | None = None
    type: Literal["linux", "ovs"] | None = None
    stp: StrictBool | None = None
    vlan_filtering: StrictBool | None = None
    forward_delay: Annotated[StrictFloat, Field(ge=2, le=30)] | None = None
    ageing_time: Annotated[StrictInt, Field(ge=0, le=1_000_000)] | None = None
    fail_mode: Literal["standalone", "secure"] | None = None
    ovs_datapath: Literal["auto", "system", "netdev"] | None = None
    rstp: StrictBool | None = None
    kind: Literal["netns", "vm", "tap"] | None = None
    forwarding: StrictBool | None = None
    memory: Memory | None = None
    vcpus: Annotated[StrictInt, Field(ge=1, le=64)] | None = None
    image: Image | None = None
    accel: Literal["auto", "kvm", "tcg"] | None = None
    owner: str | int | None = None
    group: str | int | None = None
    multi_queue: StrictBool | None = None
    impair: LinkImpairment | None = None


# A defaults key that is written differently from the field it fills.
DEFAULT_KEY_FIELDS = {"ovs_datapath": "datapath"}


class Topology(Spec):
    """A lab: the whole topology file."""

    model_config = ConfigDict(title="vnet topology (format version 1)")

    name: str = Field(description="Lab name: 1-12 characters [a-z][a-z0-9-]*; marks every object")
    version: Literal[1] = 1
    defaults: Defaults = Field(default_factory=Defaults)
    networks: dict[str, Network] = Field(default_factory=dict)
    switches: dict[str, Switch] = Field(default_factory=dict)
    nodes: dict[str, Node] = Field(default_factory=dict)
    links: tuple[Link, ...] = ()
    sriov: dict[str, PfSpec] = Field(default_factory=dict)
    expect: tuple[Expectation, ...] | None = Field(
        None, description="Reachability to prove; absent: derived from the graph")


SECTIONS = tuple(Topology.model_fields)

"""Addressing: parsing, deterministic pool assignment (file order, append-stable), MAC addresses."""

from __future__ import annotations

from pathlib import Path

import netaddr
import pytest

import vnet
from vnet.errors import TopologyError
from vnet.topology.addressing import (
    AddressError,
    Pool,
    mac_address,
    parse_interface_address,
    parse_ip,
    parse_subnet,
)


def write(tmp_path: Path, text: str, name: str = "lab.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def addresses(lab: vnet.Lab) -> dict[str, list[str]]:
    return {str(i): [str(a) for a in i.addresses] for i in lab.interfaces.values()}


def lab_with(tmp_path: Path, networks: str, links: str,
             nodes: tuple[str, ...] = ("a", "b", "c", "d")) -> vnet.Lab:
    node_lines = "".join(f"  {n}: {{}}\n" for n in nodes)
    text = (f"name: addr\nnetworks:\n{networks}switches:\n  sw1: {{type: ovs}}\n"
            f"nodes:\n{node_lines}links:\n{links}")
    return vnet.load(write(tmp_path, text))


# --- parsing ------------------------------------------------------------------------------------


def test_parse_interface_address_keeps_the_host_part() -> None:
    address = parse_interface_address("10.0.0.5/24")
    assert (str(address.ip), address.prefixlen, str(address.cidr)) == ("10.0.0.5", 24, "10.0.0.0/24")
    assert str(parse_interface_address("fd00::1/64").ip) == "fd00::1"


@pytest.mark.parametrize(("text", "needle"), [
    ("10.0.0.1", "has no prefix length"),
    ("fd00::1", "has no prefix length"),
    ("host", "is not an address in CIDR form"),
    ("10.0.0.256/24", "is not an address in CIDR form"),
    ("10.0.0.1/33", "is not an address in CIDR form"),
    ("10.0.0.0/24", "network address"),
    ("10.0.0.255/24", "broadcast address"),
])
def test_parse_interface_address_refusals(text: str, needle: str) -> None:
    with pytest.raises(AddressError, match=needle):
        parse_interface_address(text)


@pytest.mark.parametrize("text", ["10.0.0.0/31", "10.0.0.1/31", "10.0.0.7/32", "fd00::/64"])
def test_point_to_point_and_host_addresses_are_fine(text: str) -> None:
    assert str(parse_interface_address(text)) == text


def test_parse_subnet() -> None:
    assert str(parse_subnet("10.1.0.0/16")) == "10.1.0.0/16"
    with pytest.raises(AddressError, match=r"host bits set; the subnet is 10\.1\.0\.0/16"):
        parse_subnet("10.1.2.3/16")
    with pytest.raises(AddressError, match="has no prefix length"):
        parse_subnet("10.1.0.0")
    with pytest.raises(AddressError, match="is not a subnet in CIDR form"):
        parse_subnet("lan")


def test_parse_ip() -> None:
    assert parse_ip("10.0.0.254") == netaddr.IPAddress("10.0.0.254")
    with pytest.raises(AddressError):
        parse_ip("10.0.0.254/24")


# --- pools --------------------------------------------------------------------------------------


def test_pool_takes_lowest_free_hosts_and_skips_gateway_and_used() -> None:
    pool = Pool("p", netaddr.IPNetwork("10.0.0.0/29"), netaddr.IPAddress("10.0.0.2"))
    used = {(4, int(netaddr.IPAddress("10.0.0.3")))}
    taken = [str(pool.take(used)) for _ in range(4)]
    assert taken == ["10.0.0.1/29", "10.0.0.4/29", "10.0.0.5/29", "10.0.0.6/29"]
    assert pool.take(used) is None  # .7 is the broadcast address


@pytest.mark.parametrize(("subnet", "expected"), [
    ("192.168.0.0/31", ["192.168.0.0/31", "192.168.0.1/31"]),
    ("192.168.0.9/32", ["192.168.0.9/32"]),
    ("192.168.0.0/30", ["192.168.0.1/30", "192.168.0.2/30"]),
    ("fd00::/126", ["fd00::1/126", "fd00::2/126", "fd00::3/126"]),
])
def test_pool_host_ranges(subnet: str, expected: list[str]) -> None:
    pool = Pool("p", netaddr.IPNetwork(subnet))
    taken = []
    while (address := pool.take(set())) is not None:
        taken.append(str(address))
    assert taken == expected


def test_pool_order_is_file_order_and_endpoint_order(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, "  lan: {subnet: 10.10.0.0/24}\n",
                   "  - {endpoints: [c:eth0, sw1], network: lan}\n"
                   "  - {endpoints: [b:eth0, a:eth0], network: lan}\n"
                   "  - {endpoints: [d:eth0, sw1], network: lan}\n")
    assert addresses(lab) == {"c:eth0": ["10.10.0.1/24"], "b:eth0": ["10.10.0.2/24"],
                              "a:eth0": ["10.10.0.3/24"], "d:eth0": ["10.10.0.4/24"]}


def test_pool_skips_its_gateway_and_earlier_static_addresses(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, "  lan: {subnet: 10.10.0.0/24, gateway: 10.10.0.1}\n",
                   "  - {endpoints: [a:eth0, sw1], ip: 10.10.0.2/24}\n"
                   "  - {endpoints: [b:eth0, sw1], network: lan}\n")
    assert addresses(lab)["b:eth0"] == ["10.10.0.3/24"]


def test_pool_address_is_not_moved_by_a_later_static_one(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as caught:
        lab_with(tmp_path, "  lan: {subnet: 10.10.0.0/24}\n",
                 "  - {endpoints: [a:eth0, sw1], network: lan}\n"
                 "  - {endpoints: [b:eth0, sw1], ip: 10.10.0.1/24}\n", nodes=("a", "b"))
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.attr) == ("address-duplicate", "links[1].ip")


def test_ipv4_31_and_32_pools_and_ipv6_pool(tmp_path: Path) -> None:
    lab = lab_with(tmp_path,
                   "  p2p: {subnet: 10.9.0.0/31}\n  lo: {subnet: 10.8.0.5/32}\n"
                   "  v6: {subnet: 'fd00:10::/64'}\n",
                   "  - {endpoints: [a:eth0, b:eth0], network: p2p}\n"
                   "  - {endpoints: [c:eth0, sw1], network: lo}\n"
                   "  - {endpoints: [d:eth0, sw1], network: v6}\n")
    assert addresses(lab) == {"a:eth0": ["10.9.0.0/31"], "b:eth0": ["10.9.0.1/31"],
                              "c:eth0": ["10.8.0.5/32"], "d:eth0": ["fd00:10::1/64"]}


def test_dual_stack_network_list(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, "  v4: {subnet: 10.10.0.0/24}\n  v6: {subnet: 'fd00:10::/64'}\n",
                   "  - {endpoints: [a:eth0, sw1], network: [v4, v6]}\n"
                   "  - {endpoints: [b:eth0, c:eth0], network: [v4, v6]}\n")
    assert addresses(lab) == {
        "a:eth0": ["10.10.0.1/24", "fd00:10::1/64"],
        "b:eth0": ["10.10.0.2/24", "fd00:10::2/64"],
        "c:eth0": ["10.10.0.3/24", "fd00:10::3/64"],
    }


def test_dual_stack_static_addresses(tmp_path: Path) -> None:
    lab = lab_with(tmp_path, "",
                   "  - {endpoints: [a:eth0, sw1], ip: [10.0.0.1/24, 'fd00::1/64']}\n"
                   "  - endpoints: [b:eth0, c:eth0]\n"
                   "    ip: [[10.0.1.1/30, 'fd00:1::1/64'], [10.0.1.2/30, 'fd00:1::2/64']]\n")
    assert addresses(lab) == {"a:eth0": ["10.0.0.1/24", "fd00::1/64"],
                              "b:eth0": ["10.0.1.1/30", "fd00:1::1/64"],
                              "c:eth0": ["10.0.1.2/30", "fd00:1::2/64"]}


def test_pool_exhaustion_is_reported_on_the_link_that_misses_out(tmp_path: Path) -> None:
    with pytest.raises(TopologyError) as caught:
        lab_with(tmp_path, "  tiny: {subnet: 192.168.7.0/30}\n",
                 "  - {endpoints: [a:eth0, sw1], network: tiny}\n"
                 "  - {endpoints: [b:eth0, sw1], network: tiny}\n"
                 "  - {endpoints: [c:eth0, sw1], network: tiny}\n", nodes=("a", "b", "c"))
    [diagnostic] = caught.value.diagnostics
    assert (diagnostic.code, diagnostic.attr) == ("pool-exhausted", "links[2].network")


# --- appending never changes earlier addresses ----------------------------------------------------

BASE = """\
name: grow
networks:
  lan: {subnet: 10.10.0.0/24, gateway: 10.10.0.254}
  v6: {subnet: 'fd00:10::/64'}
  p2p: {subnet: 10.99.0.0/29}
switches:
  sw1: {type: ovs}
nodes:
  h1: {}
  h2: {}
  h3: {}
  r1: {forwarding: true}
links:
  - {endpoints: [h1:eth0, sw1], network: [lan, v6]}
  - {endpoints: [h2:eth0, sw1], ip: 10.10.0.7/24}
  - {endpoints: [h3:eth0, sw1], network: lan}
  - {endpoints: [h1:eth1, r1:eth0], network: p2p}
  - {endpoints: [r1:eth1, sw1], network: [v6, lan]}
"""


@pytest.mark.parametrize("appended", [
    "  - {endpoints: [h4:eth0, sw1], network: [lan, v6]}\n",
    "  - {endpoints: [h4:eth0, h3:eth1], network: p2p}\n",
    "  - {endpoints: [h4:eth0, sw1], ip: 10.10.0.100/24}\n"
    "  - {endpoints: [h4:eth1, h3:eth1], network: [p2p, v6]}\n",
])
def test_appending_a_node_and_link_never_changes_earlier_addresses(tmp_path: Path, appended: str) -> None:
    before = vnet.load(write(tmp_path, BASE, "before.yaml"))
    grown = BASE.replace("  r1: {forwarding: true}\n", "  r1: {forwarding: true}\n  h4: {}\n") + appended
    after = vnet.load(write(tmp_path, grown, "after.yaml"))
    old = addresses(before)
    new = addresses(after)
    assert old == {key: new[key] for key in old}
    assert len(new) > len(old)  # the appended link really got interfaces ...
    assert all(new[key] for key in new.keys() - old.keys())  # ... with addresses
    every = [a for v in new.values() for a in v]
    assert len(every) == len(set(every))


def test_the_base_assignment(tmp_path: Path) -> None:
    lab = vnet.load(write(tmp_path, BASE))
    assert addresses(lab) == {
        "h1:eth0": ["10.10.0.1/24", "fd00:10::1/64"],
        "h2:eth0": ["10.10.0.7/24"],
        "h3:eth0": ["10.10.0.2/24"],
        "h1:eth1": ["10.99.0.1/29"],
        "r1:eth0": ["10.99.0.2/29"],
        "r1:eth1": ["fd00:10::2/64", "10.10.0.3/24"],
    }


# --- MAC addresses --------------------------------------------------------------------------------


def test_mac_is_locally_administered_unicast_and_deterministic() -> None:
    mac = mac_address("lab", "h1", "eth0")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 == 0x02  # locally administered
    assert first & 0x01 == 0  # unicast
    assert mac == mac_address("lab", "h1", "eth0")
    assert len(mac.split(":")) == 6


def test_mac_differs_per_lab_node_and_interface() -> None:
    macs = {mac_address(lab, node, iface)
            for lab in ("lab", "lab2") for node in ("h1", "h2") for iface in ("eth0", "eth1")}
    assert len(macs) == 8
    # No ambiguity from concatenation: ("ab", "c") and ("a", "bc") differ.
    assert mac_address("x", "ab", "c") != mac_address("x", "a", "bc")


def test_lab_interfaces_carry_their_macs(tmp_path: Path) -> None:
    first = vnet.load(write(tmp_path, BASE, "one.yaml"))
    again = vnet.load(write(tmp_path, BASE, "two.yaml"))
    assert {k: i.mac for k, i in first.interfaces.items()} == {k: i.mac for k, i in again.interfaces.items()}
    assert first.interfaces[("h1", "eth0")].mac == mac_address("grow", "h1", "eth0")
    renamed = vnet.load(write(tmp_path, BASE.replace("name: grow", "name: grown"), "three.yaml"))
    assert renamed.interfaces[("h1", "eth0")].mac != first.interfaces[("h1", "eth0")].mac
    assert len({i.mac for i in first.interfaces.values()}) == len(first.interfaces)

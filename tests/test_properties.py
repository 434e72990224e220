"""Property-based tests (hypothesis): bad input of any shape is a TopologyError, never a crash.

Three families of input:
  (a) random YAML documents: nested mappings/lists/scalars (unicode, very long strings, deep
      nesting, huge integers, floats, nulls) serialised with `yaml.safe_dump`, plus documents
      shaped like a topology (known section names with random values);
  (b) valid topologies built by a strategy (both switch types, every node kind, every endpoint
      form, pools, static addresses, routes, SR-IOV, expect) and then mutated: keys deleted,
      types changed, values swapped, unknown keys inserted, entries duplicated, numbers out of
      range, random strings as endpoints and addresses;
  (c) random bytes, random text and YAML token soup fed to `source.read_file` / `parse_text`;
  (d) valid topologies given one targeted mistake from a table (`_TARGETED`: duplicate an
      address, point an endpoint at an unknown node, an invalid CIDR, an unknown key, a VLAN
      out of range, ...), each with the code it must produce.

Properties: `vnet.load` returns a Lab or raises TopologyError, nothing else; every diagnostic has a
file, a line >= 0, a code and a message; `vnet.topology.diagnose` never raises. For the valid
topologies: `build_graph(lab).summary()` and `.expectations()` work, every node interface is in
exactly one L2 segment, MACs are unique locally administered unicast addresses, and assigned
addresses are unique. For (d): the document is rejected and its targeted code is among the errors.

The default run is short (a modest number of examples per test, ~10-20 s in all). For a long
fuzzing run set VNET_FUZZ_EXAMPLES, the number of examples per test:

    VNET_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/test_properties.py -q

Crashes found this way are pinned below as `@example`s or as plain regression tests.
"""

from __future__ import annotations

import copy
import os
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netaddr
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import vnet
from vnet.errors import Diagnostic, TopologyError
from vnet.topology import diagnose
from vnet.topology.graph import build_graph
from vnet.topology.lab import Lab
from vnet.topology.model import SECTIONS
from vnet.topology.source import SourceError, parse_text, read_file

EXAMPLES = int(os.environ.get("VNET_FUZZ_EXAMPLES", "0")) or None
FUZZ = settings(
    max_examples=EXAMPLES or 100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.function_scoped_fixture],
    derandomize=EXAMPLES is None,  # the default run is reproducible; a long run explores
)
# Family (d) runs once per mutation of its table, so each gets fewer examples by default.
TARGETED = settings(FUZZ, max_examples=EXAMPLES or 8)


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _write(directory: Path, data: str | bytes, name: str = "lab.yaml") -> str:
    path = directory / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8", errors="surrogatepass")
    return str(path)


def _check_diagnostics(diagnostics: list[Diagnostic], path: str) -> None:
    assert diagnostics, "an invalid topology must say why"
    for d in diagnostics:
        assert isinstance(d, Diagnostic)
        assert d.file == path
        assert isinstance(d.line, int) and d.line >= 0
        assert isinstance(d.column, int) and d.column >= 0
        assert d.code and isinstance(d.code, str)
        assert d.message and isinstance(d.message, str)
        d.format()
        d.to_json()


def assert_loads_or_reports(path: str) -> Lab | None:
    """The central property: a Lab, or a TopologyError with well-formed diagnostics."""
    try:
        lab = vnet.load(path)
    except TopologyError as exc:
        _check_diagnostics(exc.diagnostics, path)
        assert any(d.is_error for d in exc.diagnostics)
        exc.format()
        lab = None
    checked, diagnostics = diagnose(path)  # never raises
    assert (checked is None) == (lab is None)
    for d in diagnostics:
        assert d.file == path and d.line >= 0 and d.code and d.message
    if lab is not None:
        assert isinstance(lab, Lab)
        _check_graph(lab)
    return lab


def _check_graph(lab: Lab) -> None:
    graph = build_graph(lab)
    graph.summary()
    graph.expectations()
    seen: dict[tuple[str, str], str] = {}
    for segment in graph.segments:
        for key in segment.interfaces:
            assert key not in seen, f"{key} in segments {seen[key]} and {segment.name}"
            seen[key] = segment.name
    assert set(seen) == set(lab.interfaces)
    macs = [i.mac for i in lab.interfaces.values()]
    assert len(set(macs)) == len(macs)
    for mac in macs:
        first = int(mac.split(":")[0], 16)
        assert first & 0x02 and not first & 0x01, mac
        assert int(netaddr.EUI(mac)) >> 40 == first
    addresses = [(a.version, int(a.ip)) for i in lab.interfaces.values() for a in i.addresses]
    assert len(set(addresses)) == len(addresses)


# --- (a) random YAML documents ----------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
_long_text = st.builds(lambda s, n: (s or "x") * n, st.text(max_size=8).filter(lambda s: "\x00" not in s),
                       st.integers(500, 20_000))
_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(-(10**60), 10**60),
    st.floats(), st.floats(allow_nan=False, allow_infinity=False, width=16),
    _text, _long_text,
    st.sampled_from(["yes", "no", "on", "off", "~", "null", "0o17", "0x1F", ".inf", "-.nan", "1e400",
                     "2024-01-01", "10.0.0.1/24", "h1:eth0", "sriov:p0/vf1", "<<", "=", ""]),
)


def _deep(value: Any, depth: int, as_list: bool) -> Any:
    for _ in range(depth):
        value = [value] if as_list else {"k": value}
    return value


_nested = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=6),
                               st.dictionaries(_text, children, max_size=6)),
    max_leaves=40,
)
_documents = st.one_of(
    _nested,
    st.builds(_deep, _nested, st.integers(0, 80), st.booleans()),
    # shaped like a topology: the real section names with random values
    st.dictionaries(st.sampled_from([*SECTIONS, "name", "nodes", "links", "bogus"]), _nested,
                    max_size=len(SECTIONS) + 2),
)


def _dump(document: Any, flow: bool | None, unicode: bool) -> str:
    return yaml.safe_dump(document, default_flow_style=flow, allow_unicode=unicode, sort_keys=False)


@FUZZ
@given(document=_documents, flow=st.sampled_from([None, True, False]), unicode=st.booleans())
def test_random_yaml_documents(workdir: Path, document: Any, flow: bool | None, unicode: bool) -> None:
    assert_loads_or_reports(_write(workdir, _dump(document, flow, unicode)))


# --- (b) valid topologies, then mutated -------------------------------------------------------

LAB_CHARS = string.ascii_lowercase + string.digits + "-"


@st.composite
def valid_topologies(draw: st.DrawFn) -> dict[str, Any]:  # noqa: PLR0915 - one generator, read top-down
    """A small valid topology: every construct of the format, addresses that never collide."""
    doc: dict[str, Any] = {"name": draw(st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True))}
    if draw(st.booleans()):
        doc["defaults"] = draw(st.fixed_dictionaries({}, optional={
            "mtu": st.integers(1280, 9000), "stp": st.booleans(),
            "ovs_datapath": st.sampled_from(["auto", "system", "netdev"]),
            "memory": st.integers(128, 512), "forwarding": st.booleans()}))
    n_pools = draw(st.integers(0, 3))
    pools = {f"pool{k}": ({"subnet": f"198.19.{k}.0/24"} if k % 2 == 0 else {"subnet": f"fd00:{k}::/64"})
             for k in range(n_pools)}
    if pools:
        if draw(st.booleans()):
            pools["pool0"]["gateway"] = "198.19.0.254"
        doc["networks"] = pools

    switches: dict[str, dict[str, Any]] = {}
    for k in range(draw(st.sampled_from([2, 3, 4, 1, 0]))):
        kind = draw(st.sampled_from(["ovs", "linux"]))
        spec: dict[str, Any] = {"type": kind}
        if kind == "linux":
            spec["vlan_filtering"] = draw(st.booleans())
        else:
            spec["fail_mode"] = draw(st.sampled_from(["standalone", "secure"]))
        switches[f"sw{k}"] = spec
    if switches:
        doc["switches"] = switches

    kinds = draw(st.lists(st.sampled_from(["netns", "vm", "tap"]), min_size=1, max_size=6)
                 | st.lists(st.sampled_from(["netns", "vm", "tap"]), min_size=3, max_size=8))
    nodes: dict[str, dict[str, Any]] = {}
    for k, kind in enumerate(kinds):
        spec = {"kind": kind}
        if kind == "vm":
            spec.update(memory=draw(st.integers(128, 1024)), vcpus=draw(st.integers(1, 4)))
        nodes[f"n{k}"] = spec
    doc["nodes"] = nodes

    pfs: dict[str, dict[str, Any]] = {}
    if draw(st.booleans()):
        pfs["pf0"] = {"num_vfs": 4, "eswitch": "legacy", "vfs": {0: {"vlan": 10, "spoofchk": True}}}
    if draw(st.booleans()):
        pfs["pf1"] = {"num_vfs": 4, "eswitch": "switchdev"}
    if pfs:
        doc["sriov"] = pfs

    links: list[dict[str, Any]] = []
    ifaces = dict.fromkeys(nodes, 0)
    subnets: dict[str, set[str]] = {name: set() for name in nodes}  # per node: subnets it is on
    free_vfs = {pf: list(range(4)) for pf in pfs}
    static = iter(range(1, 250))
    fabric = {sw: sw for sw in switches}  # union-find over switch links: they form a forest (no L2 loop)

    def root(sw: str) -> str:
        while fabric[sw] != sw:
            sw = fabric[sw]
        return sw

    def iface(node: str) -> str:
        ifaces[node] += 1
        return f"{node}:eth{ifaces[node] - 1}"

    def ovs_switches() -> list[str]:
        return sorted(s for s, spec in switches.items() if spec["type"] == "ovs")

    def aware(sw: str) -> bool:
        return switches[sw]["type"] == "ovs" or bool(switches[sw].get("vlan_filtering"))

    for _ in range(draw(st.integers(1, 12))):
        forms = [form for form, possible in (
            ("node-switch", bool(switches)), ("node-node", len(nodes) >= 2),
            ("switch-switch", len(switches) >= 2), ("vf", any(free_vfs.values())),
            ("tunnel", bool(ovs_switches()))) if possible]
        if not forms:
            break
        form = draw(st.sampled_from(forms))
        link: dict[str, Any] = {}
        if form == "node-switch":
            node = draw(st.sampled_from(sorted(nodes)))
            sw = draw(st.sampled_from(sorted(switches)))
            link["endpoints"] = draw(st.permutations([iface(node), sw]))
            if aware(sw) and draw(st.booleans()):
                link["vlan"] = draw(st.integers(1, 4094))
            if switches[sw]["type"] == "ovs":
                if nodes[node]["kind"] == "netns" and draw(st.booleans()):
                    link["attach"] = "internal"
                if draw(st.booleans()):
                    link["police"] = draw(st.fixed_dictionaries(
                        {"rate": st.integers(1, 10**9)}, optional={"burst": st.integers(0, 10**6)}))
            choice = draw(st.sampled_from(["none", "static", "pool"]))
            usable = [p for p in pools if p not in subnets[node]]
            if choice == "pool" and usable:
                pool = draw(st.sampled_from(usable))
                link["network"] = pool
                subnets[node].add(pool)
            elif choice != "none":
                k = next(static)
                link["ip"] = f"198.18.{k}.1/24" if k % 2 else [f"198.18.{k}.1/24", f"fd00:ff:{k}::1/64"]
        elif form == "node-node":
            a, b = draw(st.permutations(sorted(nodes)))[:2]
            link["endpoints"] = [iface(a), iface(b)]
            if draw(st.booleans()):
                k = next(static)
                link["ip"] = [f"198.18.{k}.1/30", f"198.18.{k}.2/30"]
            if draw(st.booleans()):
                link["mtu"] = draw(st.integers(68, 65535))
        elif form == "switch-switch":
            a, b = draw(st.permutations(sorted(switches)))[:2]
            if root(a) == root(b):
                continue  # a second path between them would be a loop without spanning tree
            fabric[root(a)] = root(b)
            link["endpoints"] = [a, b]
            if aware(a) or aware(b):
                tagging = draw(st.sampled_from(["none", "vlan", "trunk"]))
                if tagging == "vlan":
                    link["vlan"] = draw(st.integers(1, 4094))
                elif tagging == "trunk":
                    link["trunk"] = draw(st.lists(st.integers(1, 4094), min_size=1, max_size=4, unique=True))
                    if draw(st.booleans()):
                        link["native_vlan"] = draw(st.sampled_from(link["trunk"]))
        elif form == "tunnel":
            k = next(static)
            remote = draw(st.sampled_from([f"vxlan:198.18.{k}.2", f"geneve:198.18.{k}.2",
                                           f"vxlan:fd00:1::{k}"]))
            link["endpoints"] = draw(st.permutations([draw(st.sampled_from(ovs_switches())), remote]))
            if draw(st.booleans()):
                link["key"] = draw(st.integers(0, 16_777_215))
            if draw(st.booleans()):
                link["vlan"] = draw(st.integers(1, 4094))
        elif form == "vf":
            pf = draw(st.sampled_from(sorted(p for p, vfs in free_vfs.items() if vfs)))
            vf = free_vfs[pf].pop(0)
            ovs = ovs_switches()
            probing = sorted(n for n, spec in nodes.items() if spec["kind"] != "tap")
            if pfs[pf]["eswitch"] == "switchdev" and ovs and draw(st.booleans()):
                link["endpoints"] = [f"sriov:{pf}/vf{vf}", draw(st.sampled_from(ovs))]
            elif probing:
                link["endpoints"] = [iface(draw(st.sampled_from(probing))), f"sriov:{pf}/vf{vf}"]
        if "endpoints" in link:
            links.append(link)
    if links:
        doc["links"] = links

    if draw(st.booleans()):
        addressed = sorted({ep.partition(":")[0] for link in links if "ip" in link or "network" in link
                            for ep in link["endpoints"] if ":" in ep and not ep.startswith("sriov:")})
        sources = [n for n in addressed if nodes[n]["kind"] != "tap"]
        expect: list[dict[str, Any]] = []
        pairs = set()
        for _ in range(draw(st.integers(0, 4))):
            if not sources or len(addressed) < 2:
                break
            src = draw(st.sampled_from(sources))
            dst = draw(st.sampled_from([n for n in addressed if n != src]))
            if (src, dst) not in pairs:
                pairs.add((src, dst))
                expect.append({"from": src, "to": dst, "reach": draw(st.booleans())})
        doc["expect"] = expect
    for spec in nodes.values():
        if spec["kind"] != "tap" and draw(st.integers(0, 3)) == 0:
            spec["routes"] = [{"to": "default", "via": "198.18.250.1"}]  # gateway off-subnet: a warning
    return doc


# Values that break things: wrong types, out-of-range numbers, odd strings.
_nasty = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(),
    st.sampled_from([0, -1, 1, 67, 68, 4094, 4095, 65536, 2**31, 2**64, 10**30, 1.5, float("nan"),
                     "", " ", ":", "::", "a:", ":b", "a:b:c", "sriov:", "sriov:pf0/vf", "sriov:pf0/vf99",
                     "sriov:/vf1", "sw0:eth0", "n0", "n0:eth0", "n0:" + "e" * 20, "x" * 300,
                     "10.0.0.1", "10.0.0.0/24", "10.0.0.255/24", "::1/129", "fd00::/8", "1.2.3.4/33",
                     "198.18.1.1/24", "198.19.0.254", "default", "pool0", "pool1", "nope", "é", "\u202e",
                     "vxlan:", "vxlan:198.18.0.9", "geneve:fd00::1", "vxlan:x", "geneve:",
                     "tiny", {"kernel": "k"}, {"disk": "d"}, [], {}, [1, 2], ["a", "b", "c"],
                     {"subnet": "10.0.0.0/33"}, [[]], [["10.0.0.1/24"]]]),
    _text,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for k, child in enumerate(value):
            out.extend(_paths(child, (*prefix, k)))
    return out


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


def _related(doc: Any) -> list[Any]:
    """Values taken from the document itself, so that mutations make references clash."""
    out: list[Any] = [v for path in _paths(doc) if not isinstance(v := _get(doc, path), dict | list)]
    if isinstance(doc, dict):
        for section in ("nodes", "switches", "networks", "sriov"):
            names = doc.get(section)
            out.extend(names if isinstance(names, dict) else ())
        nodes = doc.get("nodes")
        out.extend(f"{n}:eth{k}" for n in (nodes if isinstance(nodes, dict) else ()) for k in (0, 1))
    return out or [None]


_OPS = ("replace", "replace", "replace-related", "replace-related", "swap", "delete", "unknown-key",
        "rename-key", "duplicate", "append", "root")


@st.composite
def mutated_topologies(draw: st.DrawFn) -> Any:
    """A valid topology with 1-5 mutations, each at a random place of a fitting shape."""
    doc: Any = draw(valid_topologies())
    for _ in range(draw(st.integers(1, 5))):
        op = draw(st.sampled_from(_OPS))
        paths = _paths(doc)
        if op in ("duplicate", "append"):
            paths = [p for p in paths if isinstance(_get(doc, p), list)]
        elif op in ("unknown-key", "rename-key"):
            paths = [p for p in paths if isinstance(_get(doc, p), dict) and _get(doc, p)]
        elif op != "root":
            paths = [p for p in paths if p]
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        target = _get(doc, path)
        if op == "root":
            doc = draw(_nasty)
        elif op == "replace":
            doc = _set(doc, path, draw(_nasty))
        elif op == "replace-related":
            doc = _set(doc, path, draw(st.sampled_from(_related(doc))))
        elif op == "swap":
            other = draw(st.sampled_from(paths))
            if not (path[:len(other)] == other or other[:len(path)] == path):  # neither contains the other
                a, b = _get(doc, path), _get(doc, other)
                doc = _set(_set(doc, path, b), other, a)
        elif op == "delete":
            del _get(doc, path[:-1])[path[-1]]
        elif op == "unknown-key":
            key = draw(st.sampled_from(["bogus", "vlans", "<<", "kind", "type", "ip", "from", "routes",
                                        "attach", "police", "native_vlan", "key"]))
            target[key] = draw(_nasty)
        elif op == "rename-key":
            key = draw(st.sampled_from(sorted(target, key=str)))
            target[draw(st.one_of(_text, st.sampled_from(_related(doc)).map(str))) or "k"] = target.pop(key)
        elif op == "duplicate" and target:
            target.append(draw(st.sampled_from(target)))
        elif op == "append":
            target.append(draw(st.one_of(_nasty, st.sampled_from(_related(doc)))))
    return doc


_EXAMPLE_VALID = {
    "name": "demo",
    "networks": {"lan10": {"subnet": "10.10.0.0/24"}},
    "switches": {"sw1": {"type": "ovs"}, "sw2": {"type": "linux", "stp": False}},
    "nodes": {"h1": {"kind": "netns", "routes": [{"to": "default", "via": "10.10.0.254"}]},
              "vm1": {"kind": "vm", "memory": 256}, "ext1": {"kind": "tap"}},
    "links": [{"endpoints": ["h1:eth0", "sw1"], "vlan": 10, "ip": "10.10.0.1/24"},
              {"endpoints": ["vm1:eth0", "sw1"], "vlan": 10, "network": "lan10"},
              {"endpoints": ["ext1:eth0", "sw2"], "network": "lan10"},
              {"endpoints": ["sw1", "sw2"], "vlan": 10}],
    "expect": [{"from": "h1", "to": "vm1"}],
}


@FUZZ
@given(doc=valid_topologies(), flow=st.sampled_from([None, True, False]))
@example(doc=_EXAMPLE_VALID, flow=None)
def test_valid_topologies_load_and_graph(workdir: Path, doc: dict[str, Any], flow: bool | None) -> None:
    path = _write(workdir, _dump(doc, flow, True))
    try:
        lab = vnet.load(path)
    except TopologyError as exc:  # pragma: no cover - the generator promises validity
        pytest.fail(f"generated topology rejected:\n{exc.format()}\n{_dump(doc, False, True)}")
    _check_graph(lab)
    assert set(lab.topology.nodes) == set(doc["nodes"])
    assert len(lab.links) == len(doc.get("links", []))


@FUZZ
@given(doc=mutated_topologies(), flow=st.sampled_from([None, True]))
def test_mutated_topologies(workdir: Path, doc: Any, flow: bool | None) -> None:
    assert_loads_or_reports(_write(workdir, _dump(doc, flow, True)))


# --- (d) valid topologies with one targeted mistake ------------------------------------------
#
# Each mutation takes a valid document (from `valid_topologies`) and makes one known mistake in
# it, adding the few entries it needs when the document has none (a fresh node, link, switch,
# pool or PF, named `zz...` so that nothing clashes). Since the document was valid, every error
# comes from the mutation, and the table's code must be among them.

Mutation = Callable[[st.DrawFn, dict[str, Any]], None]


def _fresh(doc: dict[str, Any], section: str, spec: dict[str, Any]) -> str:
    """Add an entry named zz<k> to `section` (nodes, switches, networks, sriov)."""
    entries = doc.setdefault(section, {})
    name = next(f"zz{k}" for k in range(len(entries) + 1) if f"zz{k}" not in entries)
    entries[name] = spec
    return name


def _fresh_iface(doc: dict[str, Any]) -> str:
    return f"{_fresh(doc, 'nodes', {'kind': 'netns'})}:eth0"


def _add_link(doc: dict[str, Any], link: dict[str, Any]) -> dict[str, Any]:
    doc.setdefault("links", []).append(link)
    return link


def _a_link(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    """One of the document's links, or a new node-to-node link when it has none."""
    links: list[dict[str, Any]] = doc.get("links", [])
    if links:
        return draw(st.sampled_from(links))
    return _add_link(doc, {"endpoints": [_fresh_iface(doc), _fresh_iface(doc)]})


def _a_switch(draw: st.DrawFn, doc: dict[str, Any]) -> str:
    switches: dict[str, Any] = doc.get("switches") or {_fresh(doc, "switches", {"type": "ovs"}): None}
    return draw(st.sampled_from(sorted(switches)))


def _node_ends(doc: dict[str, Any]) -> list[str]:
    """The `node:iface` endpoints of the document's links."""
    return [end for link in doc.get("links", []) for end in link["endpoints"]
            if end.partition(":")[0] in doc["nodes"]]


def _first_address(ip: Any) -> str:
    """The first address of an `ip:` value: a string, a list, or a list of lists."""
    while not isinstance(ip, str):
        ip = ip[0]
    return str(ip)


def _unknown_key(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    holders = [doc, *doc["nodes"].values(), *doc.get("switches", {}).values(),
               *doc.get("networks", {}).values(), *doc.get("links", [])]
    target = draw(st.sampled_from(holders))
    target[draw(st.sampled_from(["bogus", "vlans", "adress", "routes_v6"]))] = 1


def _unknown_endpoint(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    link = _a_link(draw, doc)
    link["endpoints"][draw(st.integers(0, 1))] = \
        draw(st.sampled_from(["ghost:eth0", "ghost", "n99:eth0", "sw99"]))


def _invalid_cidr(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    pools = doc.get("networks") or {_fresh(doc, "networks", {"subnet": "198.51.100.0/24"}): None}
    pool = doc["networks"][draw(st.sampled_from(sorted(pools)))]
    field = draw(st.sampled_from(["subnet", "gateway"]))
    pool[field] = draw(st.sampled_from(["10.0.0.0/33", "10.0.0.256/24", "lan", "fd00::/129",
                                        "198.51.100.300"]))


def _vlan_out_of_range(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    _a_link(draw, doc)["vlan"] = draw(st.sampled_from([0, -1, 4095, 5000]))


def _trunk_out_of_range(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    _a_link(draw, doc)["trunk"] = [10, draw(st.sampled_from([0, 4095, 99_999]))]


def _mtu_out_of_range(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    holders = [*doc.get("links", []), *doc.get("switches", {}).values(), doc.setdefault("defaults", {})]
    target = draw(st.sampled_from(holders))
    target["mtu"] = draw(st.sampled_from([0, 67, 65536, 10**6]))


def _mtu_not_a_number(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    _a_link(draw, doc)["mtu"] = draw(st.sampled_from(["jumbo", "9000 bytes", [1500]]))


def _duplicate_address(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    statics = [link for link in doc.get("links", []) if "ip" in link] or \
        [_add_link(doc, {"endpoints": [_fresh_iface(doc), _fresh_iface(doc)],
                         "ip": ["198.51.100.1/24", "198.51.100.2/24"]})]
    address = _first_address(draw(st.sampled_from(statics))["ip"])
    _add_link(doc, {"endpoints": [_fresh_iface(doc), _fresh_iface(doc)], "ip": [address, address]})


def _reused_iface(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    ends = _node_ends(doc) or \
        _add_link(doc, {"endpoints": [_fresh_iface(doc), _fresh_iface(doc)]})["endpoints"]
    _add_link(doc, {"endpoints": [draw(st.sampled_from(ends)), _fresh_iface(doc)]})


def _bad_lab_name(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    doc["name"] = draw(st.sampled_from(["Lab", "9lab", "a" * 13, "lab_1", "-lab", "lab.1"]))


def _bad_node_name(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    nodes = doc["nodes"]
    old = draw(st.sampled_from(sorted(nodes)))
    nodes[draw(st.sampled_from(["1node", "node.one", "n" * 33, "nöde", "_n"]))] = nodes.pop(old)


def _unknown_kind(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    node = doc["nodes"][draw(st.sampled_from(sorted(doc["nodes"])))]
    node["kind"] = draw(st.sampled_from(["container", "VM", "lxc"]))


def _unknown_type(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    switch = _a_switch(draw, doc)
    doc["switches"][switch]["type"] = draw(st.sampled_from(["bridge", "OVS", "vpp"]))


def _missing_field(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    _a_link(draw, doc)
    holders = [*((link, "endpoints") for link in doc["links"]),
               *((pool, "subnet") for pool in doc.get("networks", {}).values()),
               *((pf, "num_vfs") for pf in doc.get("sriov", {}).values())]
    target, key = draw(st.sampled_from(holders))
    del target[key]


def _invalid_route(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    routers = [n for n, spec in doc["nodes"].items() if spec["kind"] != "tap"] or \
        [_fresh(doc, "nodes", {"kind": "netns"})]
    node = doc["nodes"][draw(st.sampled_from(routers))]
    route = draw(st.sampled_from([{"to": "default", "via": "gateway"},
                                  {"to": "10.0.0.0/33", "via": "10.0.0.1"},
                                  {"to": "10.20.0.0/16", "via": "fd00::1"}]))
    node.setdefault("routes", []).append(route)


def _unknown_pool(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    ends = _node_ends(doc)
    links = [link for link in doc.get("links", []) if set(link["endpoints"]) & set(ends)] or \
        [_add_link(doc, {"endpoints": [_fresh_iface(doc), _fresh_iface(doc)]})]
    link = draw(st.sampled_from(links))
    link.pop("ip", None)
    link["network"] = draw(st.sampled_from(["nopool", "pool9", "lan"]))


def _switch_with_iface(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    switch = _a_switch(draw, doc)
    _a_link(draw, doc)["endpoints"][draw(st.integers(0, 1))] = f"{switch}:eth0"


def _loop(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    end = draw(st.sampled_from([*doc.get("switches", {}), _fresh_iface(doc)]))
    _add_link(doc, {"endpoints": [end, end]})


def _vlan_and_trunk(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    link = _a_link(draw, doc)
    link["vlan"], link["trunk"] = 10, [20, 30]


def _node_named_like_a_switch(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    node = draw(st.sampled_from(sorted(doc["nodes"])))
    doc.setdefault("switches", {})[node] = {"type": draw(st.sampled_from(["ovs", "linux"]))}


def _expect_unknown_node(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    node = draw(st.sampled_from(sorted(doc["nodes"])))
    entry = draw(st.sampled_from([{"from": "ghost", "to": node}, {"from": "sw0", "to": node}]))
    doc.setdefault("expect", []).append(entry)


def _vf_out_of_range(draw: st.DrawFn, doc: dict[str, Any]) -> None:
    pfs = doc.get("sriov") or {_fresh(doc, "sriov", {"num_vfs": 2}): None}
    pf = draw(st.sampled_from(sorted(pfs)))
    vf = doc["sriov"][pf]["num_vfs"] + draw(st.integers(0, 100))
    _add_link(doc, {"endpoints": [_fresh_iface(doc), f"sriov:{pf}/vf{vf}"]})


# (mutation, the code it must produce); the codes are those of tests/golden/bad.
_TARGETED: dict[str, tuple[Mutation, str]] = {
    "unknown key": (_unknown_key, "unknown-key"),
    "endpoint names no node or switch": (_unknown_endpoint, "endpoint-unknown"),
    "invalid pool subnet or gateway": (_invalid_cidr, "cidr-invalid"),
    "vlan out of range": (_vlan_out_of_range, "vlan-range"),
    "trunk VLAN out of range": (_trunk_out_of_range, "trunk-range"),
    "mtu out of range": (_mtu_out_of_range, "mtu-range"),
    "mtu not a number": (_mtu_not_a_number, "type"),
    "duplicate address": (_duplicate_address, "address-duplicate"),
    "interface on two links": (_reused_iface, "iface-reused"),
    "invalid lab name": (_bad_lab_name, "lab-name"),
    "invalid node name": (_bad_node_name, "node-name"),
    "unknown node kind": (_unknown_kind, "unknown-node-kind"),
    "unknown switch type": (_unknown_type, "unknown-switch-type"),
    "required field deleted": (_missing_field, "missing-field"),
    "invalid route": (_invalid_route, "route-invalid"),
    "unknown pool": (_unknown_pool, "pool-unknown"),
    "switch end with an interface": (_switch_with_iface, "switch-iface"),
    "link from an end to itself": (_loop, "link-loop"),
    "vlan and trunk": (_vlan_and_trunk, "vlan-and-trunk"),
    "node and switch of one name": (_node_named_like_a_switch, "name-conflict"),
    "expectation from a non-node": (_expect_unknown_node, "expect-unknown-node"),
    "VF beyond num_vfs": (_vf_out_of_range, "sriov-vf-range"),
}


@st.composite
def targeted_topologies(draw: st.DrawFn, mutation: str) -> dict[str, Any]:
    """A valid topology (generated, or the fixed `_EXAMPLE_VALID`) with the mistake `mutation`."""
    doc: dict[str, Any] = copy.deepcopy(draw(st.one_of(st.just(_EXAMPLE_VALID), valid_topologies())))
    _TARGETED[mutation][0](draw, doc)
    return doc


@pytest.mark.parametrize("mutation", sorted(_TARGETED))
@TARGETED
@given(data=st.data())
def test_targeted_mutation_yields_its_code(workdir: Path, mutation: str, data: st.DataObject) -> None:
    """Not only "no crash": a known mistake in a valid lab is reported with its own code."""
    doc = data.draw(targeted_topologies(mutation))
    code = _TARGETED[mutation][1]
    path = _write(workdir, _dump(doc, None, True), "targeted.yaml")
    lab, diagnostics = diagnose(path)
    errors = sorted({d.code for d in diagnostics if d.is_error})
    assert lab is None and code in errors, f"{mutation}: expected error[{code}], got {errors}"
    assert_loads_or_reports(path)


# --- (c) bytes, text and token soup -----------------------------------------------------------

_TOKENS = ["\n", "  ", "    ", "- ", ": ", ":", "? ", "{", "}", "[", "]", ",", "&a ", "*a", "&b ", "*b",
           "!!python/object:os.system ", "!foo ", "!!str ", "! ", "---\n", "...\n", "%YAML 1.1\n",
           "%TAG ! tag:x,2000:\n", "|\n", ">-\n", "'", '"', "#", "\t", "\\", "\ufeff", "\x00", "\u2028",
           "name", "demo", "nodes", "switches", "links", "endpoints", "h1:eth0", "sw1", "kind", "vm",
           "type", "ovs", "networks", "subnet", "10.0.0.0/24", "expect", "from", "to", "<<", "9" * 5000,
           "0x" + "f" * 5000, "1e999", "-.inf", ".nan", "null", "~", "yes", "true"]
_soup = st.lists(st.sampled_from(_TOKENS), max_size=60).map("".join)


def _parse_or_source_error(text: str) -> None:
    try:
        _, smap, diagnostics = parse_text(text, "t.yaml")
    except SourceError as exc:
        d = exc.diagnostic
        assert d.file == "t.yaml" and d.line >= 0 and d.code and d.message
        return
    for mark in (*smap.values.values(), *smap.keys.values()):
        assert mark.line >= 1 and mark.column >= 1
    for d in diagnostics:
        assert d.line >= 1 and d.code and d.message


@FUZZ
@given(text=st.one_of(st.text(), _soup))
@example(text="a: " + "9" * 5000)
@example(text="a: -" + "1" * 4400)
def test_parse_text_random(text: str) -> None:
    _parse_or_source_error(text)


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), _soup.map(lambda s: s.encode("utf-8", "surrogatepass"))))
@example(data=b"\xef\xbb\xbfname: x\n")
@example(data=b"\xff\xfe")
@example(data=b"name: " + b"9" * 5000)
def test_read_file_and_load_random_bytes(workdir: Path, data: bytes) -> None:
    path = _write(workdir, data, "bytes.yaml")
    try:
        read_file(path)
    except SourceError as exc:
        assert exc.diagnostic.file == path and exc.diagnostic.code and exc.diagnostic.message
    assert_loads_or_reports(path)


@FUZZ
@given(text=_soup)
def test_load_token_soup(workdir: Path, text: str) -> None:
    assert_loads_or_reports(_write(workdir, text, "soup.yaml"))


# --- regressions and fixed corner cases -------------------------------------------------------

_CORNERS: dict[str, Callable[[], str]] = {
    "missing": lambda: "",  # replaced by a path that does not exist
    "deep-list": lambda: "x: " + "[" * 200 + "]" * 200,
    "deep-map": lambda: "x: " + "{a: " * 200 + "1" + "}" * 200,
    "alias-bomb": lambda: "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join([f'*{chr(97 + k)}'] * 10)}]\n" for k in range(7)),
    "huge-int-name": lambda: "name: " + "9" * 5000,
    "huge-int-vlan": lambda: "name: x\nlinks:\n- {endpoints: [a, b], vlan: " + "1" * 4500 + "}\n",
    "inf-mtu": lambda: "name: x\ndefaults: {mtu: .inf}\n",
    "nan-forward-delay": lambda: "name: x\nswitches: {s: {type: linux, forward_delay: .nan}}\n",
}


@pytest.mark.parametrize("case", sorted(_CORNERS))
def test_corner_cases(workdir: Path, case: str) -> None:
    if case == "missing":
        path = str(workdir / "does-not-exist.yaml")
    else:
        path = _write(workdir, _CORNERS[case](), f"{case}.yaml")
    assert assert_loads_or_reports(path) is None

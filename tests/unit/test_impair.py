"""`impair:` and `state:` on links: units and normalised values, the two direction forms,
`defaults:`, where each mistake is reported, the schema, and plan/apply refusing them until
they are built (the compile step, no host needed).

The golden files (tests/golden/bad/impair-*.yaml, link-state.yaml) pin the exact diagnostics;
these tests pin the values, the boundaries and the codes around them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import vnet
from vnet.errors import Diagnostic
from vnet.mechanisms.base import HostFacts, UnsupportedError
from vnet.pipeline import stages
from vnet.pipeline.compile import compile_lab
from vnet.topology import diagnose
from vnet.topology.impair import Duration, Percentage, Rate
from vnet.topology.model import Impairment, LinkImpairment, Topology

HEAD = "name: imp\nswitches:\n  im-br: {type: linux}\nnodes: {h1: {}, h2: {}}\n"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return str(path)


def impaired(tmp_path: Path, impair: str, extra: str = "") -> vnet.Lab:
    """A valid lab whose first link has `impair: <impair>`."""
    return vnet.load(write(tmp_path, HEAD + extra + "links:\n"
                           f"  - {{endpoints: [h1:eth0, h2:eth0], impair: {impair}}}\n"))


def errors(tmp_path: Path, text: str) -> list[Diagnostic]:
    """The errors of a lab that has them (the unlinked switch of HEAD only warns)."""
    lab, diagnostics = diagnose(write(tmp_path, text))
    assert lab is None
    return [d for d in diagnostics if d.is_error]


def problems(tmp_path: Path, impair: str) -> list[Diagnostic]:
    return errors(tmp_path, HEAD + f"links:\n  - {{endpoints: [h1:eth0, h2:eth0], impair: {impair}}}\n")


def one_side(lab: vnet.Lab) -> Impairment:
    impair = lab.topology.links[0].impair
    assert impair is not None
    side = impair.directions[0]
    assert side is not None
    return side


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("written", "us"), [
    ("500us", 500), ("20ms", 20_000), ("1.5s", 1_500_000), ("0ms", 0), ("60s", 60_000_000),
    ("60000000us", 60_000_000), ("20MS", 20_000), ('"20 ms"', 20_000), ("0.001ms", 1), ("1US", 1),
])
def test_delay_takes_us_ms_s(tmp_path: Path, written: str, us: int) -> None:
    delay = one_side(impaired(tmp_path, f"{{delay: {written}}}")).delay
    assert delay == Duration(us, written.strip('"'))


@pytest.mark.parametrize(("written", "bits"), [
    ("1bit", 1), ("10kbit", 10_000), ("10mbit", 10_000_000), ("1.5gbit", 1_500_000_000),
    ("2tbit", 2 * 10 ** 12), ("1bps", 8), ("100kbps", 800_000), ("1mbps", 8_000_000),
    ("1gbps", 8 * 10 ** 9), ("1tbps", 8 * 10 ** 12), ("10Mbit", 10_000_000), ("1KBPS", 8000),
    ("0.5kbit", 500),
])
def test_rate_takes_tc_units_in_bits_per_second(tmp_path: Path, written: str, bits: int) -> None:
    rate = one_side(impaired(tmp_path, f"{{rate: {written}}}")).rate
    assert rate == Rate(bits, written)


@pytest.mark.parametrize(("written", "percent"), [
    ("0%", 0.0), ("100%", 100.0), ("0.1%", 0.1), ("1%", 1.0), ("12.5%", 12.5), ("0.0001%", 0.0001),
])
def test_probabilities_are_percentages(tmp_path: Path, written: str, percent: float) -> None:
    side = one_side(impaired(tmp_path, f"{{loss: {written}, duplicate: {written}, corrupt: {written}}}"))
    assert side.loss == side.duplicate == side.corrupt == Percentage(percent, written)


@pytest.mark.parametrize(("impair", "code"), [
    ("{delay: 20}", "impair-unit"),  # tc would read a bare time in nanoseconds
    ('{delay: "20"}', "impair-unit"),
    ("{delay: 20mss}", "impair-unit"),
    ("{delay: 20min}", "impair-unit"),
    ("{delay: fast}", "impair-unit"),
    ("{delay: 0.5us}", "impair-unit"),  # finer than a microsecond
    ("{delay: 60.000001s}", "impair-range"),
    ("{delay: 61s}", "impair-range"),
    ("{delay: -1ms}", "impair-range"),
    ("{delay: true}", "type"),
    ("{delay: [20ms]}", "type"),
    ("{loss: 1}", "impair-unit"),
    ("{loss: 1 percent}", "impair-unit"),
    ("{loss: 100.001%}", "impair-range"),
    ("{duplicate: -0.1%}", "impair-range"),
    ("{corrupt: {p: 1%}}", "type"),
    ("{rate: 10}", "impair-unit"),  # tc would read bits/s, OVS policing here kbit/s
    ("{rate: 10mb}", "impair-unit"),
    ("{rate: 10mibit}", "impair-unit"),
    ("{rate: 1e3mbit}", "impair-unit"),
    ("{rate: 0.5bit}", "impair-unit"),
    ("{rate: 0mbit}", "impair-range"),
    ("{rate: -1mbit}", "impair-range"),
    ("{rate: 200000000tbps}", "impair-range"),  # beyond netem's 64-bit bytes/s
])
def test_each_bad_value_has_its_code_at_its_field(tmp_path: Path, impair: str, code: str) -> None:
    found = problems(tmp_path, impair)
    field = impair.strip("{}").split(":")[0]
    assert [(d.code, d.attr) for d in found] == [(code, f"links[0].impair.{field}")]
    assert found[0].hint and found[0].line == 6


# --- rules between parameters ---------------------------------------------------------------


def test_jitter_up_to_the_delay_is_accepted(tmp_path: Path) -> None:
    side = one_side(impaired(tmp_path, "{delay: 1ms, jitter: 1000us}"))
    assert side.delay is not None and side.jitter is not None and side.jitter.us == side.delay.us


@pytest.mark.parametrize(("impair", "code", "attr"), [
    ("{jitter: 5ms}", "impair-jitter-without-delay", "links[0].impair.jitter"),
    ("{jitter: 0ms}", "impair-jitter-without-delay", "links[0].impair.jitter"),
    ("{delay: 1ms, jitter: 1001us}", "impair-jitter-exceeds-delay", "links[0].impair.jitter"),
    ("{delay: 0ms, jitter: 1us}", "impair-jitter-exceeds-delay", "links[0].impair.jitter"),
    ("{b: {delay: 1ms, jitter: 2ms}}", "impair-jitter-exceeds-delay", "links[0].impair.b.jitter"),
    ("{a: {delay: 1ms}, loss: 1%}", "impair-direction-mixed", "links[0].impair.loss"),
    ("{delay: 1ms, b: {}}", "impair-direction-mixed", "links[0].impair.delay"),
    ("{dealy: 1ms}", "unknown-key", "links[0].impair.dealy"),
    ("{a: {los: 1%}}", "unknown-key", "links[0].impair.a.los"),
    ("{a: {}, c: {}}", "unknown-key", "links[0].impair.c"),
    ("{mtu: 1400}", "key-misplaced", "links[0].impair.mtu"),
])
def test_rule_mistakes_are_reported_at_the_field_to_change(tmp_path: Path, impair: str, code: str,
                                                           attr: str) -> None:
    assert [(d.code, d.attr) for d in problems(tmp_path, impair)] == [(code, attr)]


def test_unknown_keys_offer_the_impairment_parameters(tmp_path: Path) -> None:
    (typo,) = problems(tmp_path, "{a: {crupt: 1%}}")
    assert typo.hint == "did you mean `corrupt`?"
    (stray,) = problems(tmp_path, "{a: {}, c: {}}")
    assert stray.hint == "valid keys: delay, jitter, loss, rate, duplicate, corrupt, a, b"


def test_a_parameter_on_the_link_itself_belongs_under_impair(tmp_path: Path) -> None:
    found = errors(tmp_path, HEAD + "links:\n  - {endpoints: [h1:eth0, h2:eth0], loss: 1%}\n")
    assert [(d.code, d.hint) for d in found] == [
        ("key-misplaced", "it belongs at `links[0].impair.loss`: check its indentation, or move it there")]


# --- the two forms and defaults ---------------------------------------------------------------


def test_one_mapping_impairs_both_directions_alike(tmp_path: Path) -> None:
    impair = impaired(tmp_path, "{delay: 20ms, loss: 1%}").topology.links[0].impair
    assert impair is not None
    a, b = impair.directions
    assert a == b and type(a) is Impairment
    assert a.delay == Duration(20_000, "20ms") and a.loss == Percentage(1.0, "1%")


def test_per_direction_sides_are_their_own_and_may_be_left_out(tmp_path: Path) -> None:
    impair = impaired(tmp_path, "{a: {delay: 20ms}, b: {rate: 1mbit}}").topology.links[0].impair
    assert impair is not None
    a, b = impair.directions
    assert a is not None and a.delay == Duration(20_000, "20ms") and a.rate is None
    assert b is not None and b.rate == Rate(1_000_000, "1mbit") and b.delay is None
    only_a = LinkImpairment.model_validate({"a": {"loss": "1%"}})
    assert only_a.directions[1] is None


@pytest.mark.parametrize("impair", ["{}", "{a: {}}", "{a: {}, b: {}}", "null"])
def test_an_empty_impairment_impairs_nothing(tmp_path: Path, impair: str) -> None:
    link = impaired(tmp_path, impair).topology.links[0]
    assert link.impair is None or link.impair.directions == (None, None)


DEFAULTS = "defaults:\n  impair: {delay: 10ms, jitter: 2ms}\n"


def test_defaults_impair_every_link_without_its_own(tmp_path: Path) -> None:
    lab = vnet.load(write(tmp_path, HEAD + DEFAULTS + "links:\n"
                          "  - {endpoints: [h1:eth0, im-br]}\n"
                          "  - {endpoints: [h2:eth0, im-br], impair: {a: {loss: 1%}}}\n"
                          "  - {endpoints: [h1:eth1, h2:eth1], impair: {}}\n"))
    first, second, third = (link.impair for link in lab.topology.links)
    assert first is not None and first.directions[0] == first.directions[1]
    assert first.delay == Duration(10_000, "10ms") and first.jitter == Duration(2_000, "2ms")
    assert second is not None and second.delay is None, "a link's own `impair` replaces the default"
    assert third is not None and third.directions == (None, None), "`impair: {}` turns it off"
    assert lab.source.locate(("links", 0, "impair")).line == 6, "a defaulted value is where it is written"


def test_a_bad_default_is_reported_once_in_defaults(tmp_path: Path) -> None:
    found = errors(tmp_path, HEAD + "defaults:\n  impair: {jitter: 2ms}\nlinks:\n"
                   "  - {endpoints: [h1:eth0, im-br]}\n  - {endpoints: [h2:eth0, im-br]}\n")
    assert [(d.code, d.attr, d.line) for d in found] == [
        ("impair-jitter-without-delay", "defaults.impair.jitter", 6)]


def test_impairment_is_allowed_on_any_pair_of_ends(tmp_path: Path) -> None:
    lab = vnet.load(write(tmp_path, "name: imp\nswitches:\n  o1: {type: ovs}\n  o2: {type: ovs}\n"
                          "  br: {type: linux}\nlinks:\n  - {endpoints: [o1, o2], impair: {delay: 1ms}}\n"
                          "  - {endpoints: [o2, br], impair: {loss: 1%}}\n"))
    assert all(link.spec.impair is not None for link in lab.links)


# --- state ------------------------------------------------------------------------------------


def test_state_is_up_unless_written_down(tmp_path: Path) -> None:
    lab = vnet.load(write(tmp_path, HEAD + "links:\n  - {endpoints: [h1:eth0, h2:eth0]}\n"
                          "  - {endpoints: [h1:eth1, h2:eth1], state: down}\n"
                          "  - {endpoints: [h1:eth2, h2:eth2], state: up}\n"))
    assert [link.state for link in lab.topology.links] == ["up", "down", "up"]


@pytest.mark.parametrize("written", ["off", "false", "Down", "[down]"])
def test_state_takes_only_up_or_down(tmp_path: Path, written: str) -> None:
    found = errors(tmp_path, HEAD + f"links:\n  - {{endpoints: [h1:eth0, h2:eth0], state: {written}}}\n")
    assert [(d.code, d.attr) for d in found] == [("invalid-value", "links[0].state")]
    assert found[0].hint == "a link is `state: up` (the default) or `state: down`"


# --- schema -----------------------------------------------------------------------------------


def test_schema_describes_impair_and_state() -> None:
    schema = Topology.model_json_schema(by_alias=True, mode="validation")
    link = schema["$defs"]["Link"]["properties"]
    assert link["state"]["enum"] == ["up", "down"] and link["state"]["default"] == "up"
    assert {"$ref": "#/$defs/LinkImpairment"} in link["impair"]["anyOf"]
    impair = schema["$defs"]["LinkImpairment"]
    assert set(impair["properties"]) == {"delay", "jitter", "loss", "rate", "duplicate", "corrupt", "a", "b"}
    assert impair["additionalProperties"] is False
    delay = schema["$defs"]["Impairment"]["properties"]["delay"]["anyOf"][0]
    assert delay["type"] == "string" and "ms" in delay["description"]
    assert "impair" in schema["$defs"]["Defaults"]["properties"]


# --- plan and apply refuse them until they are built ----------------------------------------


def test_compile_refuses_impairments_and_down_links_naming_the_lines(tmp_path: Path) -> None:
    lab = vnet.load(write(tmp_path, HEAD + DEFAULTS + "links:\n"
                          "  - {endpoints: [h1:eth0, im-br]}\n"
                          "  - {endpoints: [h2:eth0, im-br], impair: {}, state: down}\n"
                          "  - {endpoints: [h1:eth1, h2:eth1]}\n"
                          "  - {endpoints: [h1:eth2, h2:eth2], impair: {b: {rate: 1mbit}}}\n"))
    with pytest.raises(UnsupportedError) as caught:
        compile_lab(lab, HostFacts())
    file = lab.file
    assert caught.value.exit_code == 69
    assert caught.value.message == (
        f"link impairments (`impair`) at {file}:6, {file}:11; down links (`state: down`) at {file}:9: "
        "not implemented yet, this version of vnet checks them but cannot apply them")
    assert "remove them" in caught.value.hint


def test_labs_without_them_compile_as_before(tmp_path: Path) -> None:
    lab = vnet.load(write(tmp_path, HEAD + "links:\n"
                          "  - {endpoints: [h1:eth0, im-br], impair: {}, state: up}\n"
                          "  - {endpoints: [h2:eth0, im-br], impair: {a: {}}}\n"))
    assert compile_lab(lab, HostFacts()).resources


def test_plan_and_apply_refuse_before_probing_the_host(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """plan and apply compile through stages.desired_state: the refusal comes before any probe,
    so a host that lacks something else does not hide it."""
    def probe(*_args: object) -> HostFacts:
        raise AssertionError("probed the host")

    monkeypatch.setattr(stages, "probe", probe)
    lab = impaired(tmp_path, "{delay: 1ms}")
    with pytest.raises(UnsupportedError, match=r"lab\.yaml:6: not implemented yet"):
        stages.desired_state(lab, ctx=None)  # type: ignore[arg-type]  # never reached

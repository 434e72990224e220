"""The YAML source layer: YAML 1.2 core scalars, locations of values and keys, aliases, limits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vnet.topology import source
from vnet.topology.source import Mark, SourceError, SourceMap, format_path, parse_text, read_file


def parse(text: str) -> object:
    return parse_text(text, "t.yaml")[0]


def fails(text: str) -> source.Diagnostic:
    with pytest.raises(SourceError) as caught:
        parse_text(text, "t.yaml")
    return caught.value.diagnostic


# --- scalars: YAML 1.2 core schema ------------------------------------------------------------


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "Yes", "ON", "y", "n"])
def test_yaml11_booleans_stay_strings(word: str) -> None:
    assert parse(f"a: {word}\n") == {"a": word}


@pytest.mark.parametrize(("text", "value"), [
    ("true", True), ("false", False), ("True", True), ("FALSE", False),
    ("~", None), ("null", None), ("", None),
])
def test_core_booleans_and_nulls(text: str, value: object) -> None:
    assert parse(f"a: {text}\n") == {"a": value}


@pytest.mark.parametrize(("text", "value"), [
    ("10", 10), ("-7", -7), ("+12", 12), ("010", 10),  # YAML 1.2: no octal by leading zero
    ("0x1F", 31), ("0xff", 255), ("0o17", 15),
])
def test_integers(text: str, value: int) -> None:
    result = parse(f"a: {text}\n")
    assert result == {"a": value}
    assert type(result["a"]) is int  # type: ignore[index]


@pytest.mark.parametrize(("text", "value"), [
    ("1.5", 1.5), ("-0.25", -0.25), ("1e3", 1000.0), ("1.", 1.0), (".5", 0.5),
    (".inf", math.inf), ("-.inf", -math.inf),
])
def test_floats(text: str, value: float) -> None:
    result = parse(f"a: {text}\n")
    assert result == {"a": value}
    assert type(result["a"]) is float  # type: ignore[index]


def test_nan() -> None:
    result = parse("a: .nan\n")
    assert math.isnan(result["a"])  # type: ignore[index]


@pytest.mark.parametrize("text", ['"10"', "'10'", '"true"', "'0x1F'", '"1.5"', '"null"'])
def test_quoted_scalars_stay_strings(text: str) -> None:
    value = parse(f"a: {text}\n")["a"]  # type: ignore[index]
    assert isinstance(value, str)


@pytest.mark.parametrize("text", ["2024-01-01", "12:30:00", "1_000", "0x", "10.0.0.1/24", "fd00::1"])
def test_other_plain_scalars_stay_strings(text: str) -> None:
    assert parse(f"a: {text}\n") == {"a": text}


def test_mapping_keys_are_strings() -> None:
    assert parse("1: a\ntrue: b\nnull: c\n") == {"1": "a", "true": "b", "null": "c"}


# --- locations ---------------------------------------------------------------------------------


def test_locations_of_values_and_keys() -> None:
    text = "name: lab\nnodes:\n  h1:\n    kind: vm\nlinks:\n  - endpoints: [h1:eth0, sw1]\n"
    _, smap, _ = parse_text(text, "t.yaml")
    assert smap.values[("name",)] == Mark(1, 7)
    assert smap.keys[("name",)] == Mark(1, 1)
    assert smap.keys[("nodes", "h1")] == Mark(3, 3)
    assert smap.values[("nodes", "h1", "kind")] == Mark(4, 11)
    assert smap.keys[("nodes", "h1", "kind")] == Mark(4, 5)
    assert smap.values[("links", 0)] == Mark(6, 5)
    assert smap.values[("links", 0, "endpoints", 0)] == Mark(6, 17)
    assert smap.values[("links", 0, "endpoints", 1)] == Mark(6, 26)


def test_locate_prefers_key_then_falls_back_to_enclosing_value() -> None:
    _, smap, _ = parse_text("a:\n  b: 1\n", "t.yaml")
    assert smap.locate(("a", "b"), key=True) == Mark(2, 3)
    assert smap.locate(("a", "b")) == Mark(2, 6)
    assert smap.locate(("a", "b", "missing", 3)) == Mark(2, 6)
    assert smap.locate(("nothing",)) == smap.values[()]
    assert SourceMap("x").locate(("a",)) == Mark(1, 1)


def test_alias_locations() -> None:
    text = "r: &r\n  to: default\n  via: 10.0.0.1\nnodes:\n  h1:\n    route: *r\n"
    value, smap, _ = parse_text(text, "t.yaml")
    assert value["nodes"]["h1"]["route"] == {"to": "default", "via": "10.0.0.1"}
    # The alias itself is where it is used; what it expands to is where the anchor wrote it.
    assert smap.values[("nodes", "h1", "route")] == Mark(6, 12)
    assert smap.values[("nodes", "h1", "route", "via")] == Mark(3, 8)
    assert smap.keys[("nodes", "h1", "route", "via")] == Mark(3, 3)


def test_scalar_alias_location() -> None:
    _, smap, _ = parse_text("a: &m 1500\nb: *m\n", "t.yaml")
    assert smap.values[("b",)] == Mark(2, 4)


def test_sourcemap_alias_copies_marks() -> None:
    _, smap, _ = parse_text("defaults:\n  mtu: 9000\nx: {}\n", "t.yaml")
    smap.alias(("x", "mtu"), ("defaults", "mtu"))
    assert smap.locate(("x", "mtu")) == Mark(2, 8)
    assert smap.locate(("x", "mtu"), key=True) == Mark(2, 3)


def test_format_path() -> None:
    assert format_path(("links", 3, "vlan")) == "links[3].vlan"
    assert format_path(("nodes", "h1", "routes", 0, "via")) == "nodes.h1.routes[0].via"
    assert format_path(()) == ""


# --- refusals and limits ------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "shown"), [
    ("a: !!python/object:os.system x\n", "!!python/object:os.system"),
    ("a: !foo x\n", "!foo"),
    ("a: !!str x\n", "!!str"),
    ("a: !!map {b: 1}\n", "!!map"),
    ("a: !!binary aGk=\n", "!!binary"),
])
def test_explicit_tags_are_refused(text: str, shown: str) -> None:
    diagnostic = fails(text)
    assert diagnostic.code == "yaml-tag"
    assert f"`{shown}`" in diagnostic.message
    assert (diagnostic.line, diagnostic.column) == (1, 4)


def test_duplicate_key_is_reported_but_not_fatal() -> None:
    value, _, diagnostics = parse_text("a: 1\nb: 2\na: 3\n", "t.yaml")
    assert value == {"a": 1, "b": 2}  # the first one is kept
    [diagnostic] = diagnostics
    assert diagnostic.code == "yaml-duplicate-key"
    assert (diagnostic.line, diagnostic.column) == (3, 1)
    assert "first on line 1" in diagnostic.message


def test_undefined_and_recursive_aliases() -> None:
    assert fails("a: *nowhere\n").code == "yaml-alias"
    recursive = fails("a: &x\n  b: *x\n")
    assert recursive.code == "yaml-alias"
    assert "itself" in recursive.message
    assert (recursive.line, recursive.column) == (2, 6)


def test_alias_bomb_is_refused_quickly() -> None:
    levels = ["a: &a [" + ", ".join(['"lol"'] * 10) + "]"]
    for k in range(1, 9):
        prev, cur = chr(ord("a") + k - 1), chr(ord("a") + k)
        levels.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    diagnostic = fails("\n".join(levels) + "\n")
    assert diagnostic.code == "yaml-too-large"


def test_alias_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "MAX_ALIAS_VALUES", 6)  # each *a expands to 3 values
    assert parse("a: &a [1, 2]\nb: *a\nc: *a\n") == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}
    assert fails("a: &a [1, 2]\nb: *a\nc: *a\nd: *a\n").code == "yaml-too-large"


def test_value_count_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "MAX_NODES", 10)
    assert fails("a: [" + ", ".join(["1"] * 20) + "]\n").code == "yaml-too-large"


def test_list_length_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "MAX_SECTION_ENTRIES", 4)  # a list directly under the root
    monkeypatch.setattr(source, "MAX_LIST_ENTRIES", 3)  # any list deeper down
    assert parse("links: [1, 2, 3, 4]\n") == {"links": [1, 2, 3, 4]}
    refused = fails("links: [1, 2, 3, 4, 5]\n")
    assert (refused.code, refused.line, refused.column) == ("yaml-list-too-long", 1, 21)
    assert "`links` holds more than 4 entries" in refused.message
    assert parse("links:\n  - trunk: [1, 2, 3]\n") == {"links": [{"trunk": [1, 2, 3]}]}
    nested = fails("links:\n  - trunk: [1, 2, 3, 4]\n")
    assert nested.code == "yaml-list-too-long"
    assert "`links[0].trunk` holds more than 3 entries" in nested.message
    assert fails("[1, 2, 3, 4]\n").code == "yaml-list-too-long"  # a list as the whole document


def test_an_alias_keeps_locations_recorded_only_while_its_anchor_was_open() -> None:
    value, smap, _ = parse_text("x: 1\na: &a\n  b: [1, {c: 2}]\nd: *a\ne: 3\n", "t.yaml")
    assert value["d"] == {"b": [1, {"c": 2}]}
    assert smap.values[("d", "b", 1, "c")] == Mark(3, 14)
    assert smap.keys[("d", "b")] == Mark(3, 3)
    assert smap.values[("e",)] == Mark(5, 4)


def test_depth_limit() -> None:
    ok = "a: " + "[" * (source.MAX_DEPTH - 2) + "]" * (source.MAX_DEPTH - 2) + "\n"
    assert parse(ok) is not None
    deep = "a: " + "[" * source.MAX_DEPTH + "]" * source.MAX_DEPTH + "\n"
    assert fails(deep).code == "yaml-too-deep"
    # Newer libyaml (PyYAML 6.0.4's wheels) stops at 1000 levels itself, before any event arrives.
    for levels in (1000, 100_000):
        assert fails("a: " + "[" * levels + "]" * levels + "\n").code == "yaml-too-deep"


def test_complex_keys_are_refused() -> None:
    assert fails("? {a: 1}\n: b\n").code == "yaml-complex-key"
    assert fails("? [a]\n: b\n").code == "yaml-complex-key"
    assert fails("x: &k a\n*k : b\n").code == "yaml-complex-key"


def test_merge_keys_are_refused_but_a_quoted_key_is_a_key() -> None:
    diagnostic = fails("base: &b {x: 1}\nother:\n  <<: *b\n")
    assert diagnostic.code == "yaml-merge-key"
    assert (diagnostic.line, diagnostic.column) == (3, 3)
    assert parse('a: {"<<": 1}\n') == {"a": {"<<": 1}}


def test_multiple_documents_are_refused() -> None:
    diagnostic = fails("a: 1\n---\nb: 2\n")
    assert diagnostic.code == "yaml-multi-document"
    assert diagnostic.line == 2


def test_a_single_explicit_document_is_fine() -> None:
    assert parse("---\na: 1\n...\n") == {"a": 1}


def test_empty_documents() -> None:
    assert parse("") is None
    assert parse("# only a comment\n") is None


def test_syntax_error_has_position_and_context_line() -> None:
    diagnostic = fails("a: {b: 1\nc: 2\n")
    assert diagnostic.code == "yaml-syntax"
    assert diagnostic.line == 2
    assert "started on line 1" in diagnostic.message
    assert diagnostic.hint


def test_huge_integer_is_a_diagnostic() -> None:
    assert fails("a: " + "9" * 5000 + "\n").code == "yaml-number-too-long"


# --- files ---------------------------------------------------------------------------------------


def test_read_file_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: lab\n")
    assert read_file(str(path))[0] == {"name": "lab"}


def test_read_file_non_utf8_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: lab\nnodes:\n  caf\xe9: {}\n")
    with pytest.raises(SourceError) as caught:
        read_file(str(path))
    diagnostic = caught.value.diagnostic
    assert diagnostic.code == "file-encoding"
    assert (diagnostic.line, diagnostic.column) == (3, 6)
    assert diagnostic.file == str(path)


def test_read_file_missing(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        read_file(str(tmp_path / "nope.yaml"))
    assert caught.value.diagnostic.code == "file-unreadable"
    assert caught.value.diagnostic.line == 0


def test_read_file_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source, "MAX_FILE_BYTES", 16)
    path = tmp_path / "big.yaml"
    path.write_text("name: a-name-that-is-long\n")
    with pytest.raises(SourceError) as caught:
        read_file(str(path))
    assert caught.value.diagnostic.code == "file-too-large"


def test_read_file_reports_the_given_path(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text("a: 1\na: 2\n")
    _, smap, diagnostics = read_file(str(path))
    assert smap.file == str(path)
    assert diagnostics[0].file == str(path)


# --- indentation with something other than spaces ---------------------------------------------


@pytest.mark.parametrize(("text", "line", "says"), [
    ("a:\n\tb: 1\n", 2, "a tab"),
    ("a:\n  b:\n  \tc: 1\n", 3, "a tab"),
    ("a:\n  b: 1\n\u00a0 c: 2\n", 3, "a non-breaking space (U+00A0)"),
    ("a:\n\u3000 b: 1\n", 2, "ideographic space"),
])
def test_indentation_that_is_not_spaces_is_named(text: str, line: int, says: str) -> None:
    diagnostic = fails(text)
    assert diagnostic.code == "yaml-indentation"
    assert diagnostic.line == line and says in diagnostic.message


def test_tabs_that_yaml_allows_and_spaces_inside_values_pass() -> None:
    # A tab after the indentation of a flow collection and a no-break space inside a value are text.
    assert parse("a: {b: 1,\n\tc: 2}\nd: x\u00a0y\ne: |\n  \u00a0kept\n") == {
        "a": {"b": 1, "c": 2}, "d": "x\u00a0y", "e": "\u00a0kept\n"}

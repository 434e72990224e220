"""YAML values -> typed Topology, with every shape problem as a located Diagnostic.

Each switch, node, link, pool, PF and expectation is validated on its own so that one broken
entry never hides the problems of the others. Broken entries are left out of the partial
model and remembered (`Loaded.broken`) so that later checks do not report them twice.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter, ValidationError

from vnet.errors import Diagnostic
from vnet.topology import model as m
from vnet.topology.placement import misplaced, misplaced_entry
from vnet.topology.pydantic_errors import _type_name, translate
from vnet.topology.source import Path, SourceError, SourceMap, format_path, read_file

_ENTITY_ADAPTERS: dict[type[BaseModel], TypeAdapter[Any]] = {}
# Like a compiler, stop after this many errors: past it they are one mistake repeated, and a
# document of 100,000 bad entries would otherwise cost seconds and hundreds of MiB to report.
MAX_ERRORS = 1000


class TooManyErrors(Exception):
    """MAX_ERRORS errors are collected: whoever collects them stops and adds too_many_errors()."""


def counted(errors: int, found: Sequence[Diagnostic]) -> int:
    """The error count after `found`; raises TooManyErrors when it reaches MAX_ERRORS."""
    errors += sum(d.is_error for d in found)
    if errors >= MAX_ERRORS:
        raise TooManyErrors
    return errors


def too_many_errors(last: Diagnostic) -> Diagnostic:
    return Diagnostic(last.file, last.line, last.column, "too-many-errors",
                      f"stopped after {MAX_ERRORS} errors; the rest of the file was not checked",
                      hint="fix these (often one mistake repeated) and run again")


@dataclass
class Loaded:
    """A document turned into a (possibly partial) Topology plus what went wrong on the way."""

    file: str
    topology: m.Topology | None
    source: SourceMap
    diagnostics: list[Diagnostic] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # names of entries left out because invalid
    # Nodes on a link that was left out: their addresses are unknown, so checks that need
    # them (expectations, routes, unlinked) stay quiet rather than report consequences.
    incomplete: set[str] = field(default_factory=set)
    link_index: tuple[int, ...] = ()  # position in the file of each entry of topology.links
    name_invalid: bool = False  # `name:` missing or not a string (already reported)
    expect_index: tuple[int, ...] = ()
    errors: int = 0  # errors among diagnostics

    def add(self, *found: Diagnostic) -> None:
        self.diagnostics.extend(found)
        self.errors = counted(self.errors, found)

    @property
    def ok(self) -> bool:
        return self.topology is not None and not any(d.is_error for d in self.diagnostics)


class _Section:
    """Validates the entries of one section, collecting diagnostics."""

    def __init__(self, loaded: Loaded, raw_defaults: dict[str, Any]) -> None:
        self.loaded = loaded
        self.defaults = raw_defaults

    def error(self, path: Path, code: str, message: str, hint: str, *, key: bool = False) -> None:
        mark = self.loaded.source.locate(path, key=key)
        self.loaded.add(Diagnostic(
            self.loaded.file, mark.line, mark.column, code, message, format_path(path), hint))

    def validate(self, cls: type[BaseModel], raw: Any, path: Path) -> Any | None:
        adapter = _ENTITY_ADAPTERS.get(cls)
        if adapter is None:  # built once per class: a TypeAdapter costs ~25 us to construct
            adapter = _ENTITY_ADAPTERS[cls] = TypeAdapter(cls)
        try:
            return adapter.validate_python(raw)
        except ValidationError as exc:
            found = translate(exc, cls, raw, path, self.loaded.source)
            self.loaded.add(*found[:MAX_ERRORS - self.loaded.errors])
            return None

    def container(self, raw: Any, path: Path, kind: type) -> Any:
        if raw is None:
            return kind()
        if not isinstance(raw, kind):
            shape = "a mapping of name: {...}" if kind is dict else "a list"
            self.error(path, "type", f"`{path[-1]}` must be {shape}", "see `vnet schema` for the format")
            return kind()
        return raw

    def with_defaults(self, raw: Any, cls: type[BaseModel], path: Path) -> Any:
        """Fill the fields `cls` has and `raw` lacks from `defaults:` (raw may be shared: copy)."""
        if not isinstance(raw, dict) or not self.defaults:
            return raw
        filled = dict(raw)
        for key, value in self.defaults.items():
            name = m.DEFAULT_KEY_FIELDS.get(key, key)
            if name in cls.model_fields and name not in filled:
                filled[name] = value
                self.loaded.source.alias((*path, name), ("defaults", key))
        return filled

    def pick_class(self, raw: Any, path: Path, field_name: str,
                   registry: dict[str, type[m.SwitchBase]] | dict[str, type[m.NodeBase]],
                   fallback: str | None, what: str) -> type[BaseModel] | None:
        if not isinstance(raw, dict):
            self.error(path, "type", f"{what} `{path[-1]}` must be a mapping", "write `name: {...}`")
            return None
        chosen = raw.get(field_name, self.defaults.get(field_name, fallback))
        if chosen is None:
            self.error(path, "missing-field", f"required field `{field_name}` is missing",
                       f"set `{field_name}:` to one of {', '.join(registry)} (or in `defaults:`)")
            return None
        if not isinstance(chosen, str) or chosen not in registry:
            code = "unknown-switch-type" if field_name == "type" else "unknown-node-kind"
            self.error((*path, field_name), code, f"unknown {what} {field_name} `{chosen}`",
                       f"use one of: {', '.join(registry)}")
            return None
        return registry[chosen]

    def misplaced_entry(self, section: str, name: str, raw: Any, previous: str | None) -> bool:
        """Report an entry that is not a mapping and is named like a key of another level."""
        found = None if isinstance(raw, dict) else misplaced_entry(section, str(name), previous)
        if found is None:
            return False
        self.error((section, name), "key-misplaced", *found, key=True)
        return True

    def typed_entries(self, section: str, raw_section: Any, field_name: str,
                      registry: Any, fallback: str | None, what: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        previous: str | None = None
        for name, raw in self.container(raw_section, (section,), dict).items():
            path: Path = (section, name)
            if self.misplaced_entry(section, name, raw, previous):
                continue  # not an entry: nothing to leave out of the model
            previous = name
            cls = self.pick_class(raw, path, field_name, registry, fallback, what)
            value = None
            if cls is not None:
                value = self.validate(cls, self.with_defaults(raw, cls, path), path)
            if value is None:
                self.loaded.broken.add(name)
            else:
                out[name] = value
        return out

    def plain_entries(self, section: str, raw_section: Any, cls: type[BaseModel]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        previous: str | None = None
        for name, raw in self.container(raw_section, (section,), dict).items():
            if self.misplaced_entry(section, name, raw, previous):
                continue
            previous = name
            value = self.validate(cls, raw, (section, name))
            if value is None:
                self.loaded.broken.add(name)
            else:
                out[name] = value
        return out

    def list_entries(self, section: str, raw_section: Any, cls: type[BaseModel],
                     defaults: bool = True) -> tuple[tuple[Any, ...], tuple[int, ...]]:
        values: list[Any] = []
        index: list[int] = []
        for position, raw in enumerate(self.container(raw_section, (section,), list)):
            path: Path = (section, position)
            value = self.validate(cls, self.with_defaults(raw, cls, path) if defaults else raw, path)
            if value is not None:
                values.append(value)
                index.append(position)
            elif section == "links":
                self.loaded.incomplete.update(_mentioned_names(raw))
        return tuple(values), tuple(index)


def _mentioned_names(raw: Any) -> set[str]:
    """Node names a broken link mentions, as far as they can be read."""
    if not isinstance(raw, dict):
        return set()
    endpoints = raw.get("endpoints")
    texts = endpoints if isinstance(endpoints, list) else []
    return {t.partition(":")[0] for t in texts if isinstance(t, str)}


def _header(section: _Section, root: dict[str, Any]) -> tuple[str | None, m.Defaults, dict[str, Any]]:
    """Validate name, version and defaults: (name if usable, defaults, valid raw defaults)."""
    header = {key: root[key] for key in ("name", "version", "defaults") if key in root}
    raw_defaults = header.get("defaults")
    defaults = section.validate(m.Defaults, raw_defaults if raw_defaults is not None else {},
                                ("defaults",))
    good_defaults: dict[str, Any] = {}
    if defaults is not None:
        good_defaults = {k: v for k, v in (raw_defaults or {}).items() if v is not None}
    head = section.validate(_Header, {k: v for k, v in header.items() if k != "defaults"}, ())
    name = head.name if head is not None else header.get("name")
    return (name if isinstance(name, str) else None), defaults or m.Defaults(), good_defaults


class _Header(m.Spec):
    name: str
    version: Literal[1] = 1


def _unknown_sections(section: _Section, root: dict[str, Any]) -> None:
    for key in root:
        elsewhere = None if key in m.SECTIONS else misplaced(key, m.Topology)
        if elsewhere is not None:
            section.error((key,), "key-misplaced", elsewhere.message, elsewhere.hint, key=True)
        elif key not in m.SECTIONS:
            close = difflib.get_close_matches(key, m.SECTIONS, n=1)
            hint = f"did you mean `{close[0]}`?" if close else f"top-level keys: {', '.join(m.SECTIONS)}"
            section.error((key,), "unknown-key", f"unknown key `{key}`", hint, key=True)


def load_document(path: str) -> Loaded:
    """Read `path` into a (possibly partial) Topology; never raises for bad input."""
    try:
        root, source, diagnostics = read_file(path)
    except SourceError as exc:
        return Loaded(path, None, SourceMap(path), [exc.diagnostic])
    loaded = Loaded(path, None, source)
    try:
        loaded.add(*diagnostics)
        if isinstance(root, dict):
            _load_sections(loaded, root)
        else:
            _not_a_topology(loaded, root)
    except TooManyErrors:
        loaded.topology = None
        loaded.diagnostics.append(too_many_errors(loaded.diagnostics[-1]))
    return loaded


def _not_a_topology(loaded: Loaded, root: Any) -> None:
    what = "empty" if root is None else f"{_type_name(root)}, not a mapping"
    mark = loaded.source.locate(())
    loaded.add(Diagnostic(loaded.file, mark.line, mark.column, "not-a-topology", f"the document is {what}",
                          hint="a topology is a mapping with at least `name:`; see `vnet schema`"))


def _load_sections(loaded: Loaded, root: dict[str, Any]) -> None:
    section = _Section(loaded, {})
    _unknown_sections(section, root)
    # A bad `name:` or `version:` is reported, and the rest of the file is still checked.
    name, defaults, section.defaults = _header(section, root)
    loaded.name_invalid = name is None
    links, loaded.link_index = section.list_entries("links", root.get("links"), m.Link)
    expect_raw = root.get("expect")
    # `defaults` are for switches, nodes and links: an expectation's `mtu` is a probe size.
    expect, loaded.expect_index = section.list_entries("expect", expect_raw, m.Expectation, defaults=False)
    loaded.topology = m.Topology.model_construct(
        name=name or "", version=1, defaults=defaults,
        networks=section.plain_entries("networks", root.get("networks"), m.Network),
        switches=section.typed_entries("switches", root.get("switches"), "type",
                                       m.SWITCH_TYPES, None, "switch"),
        nodes=section.typed_entries("nodes", root.get("nodes"), "kind", m.NODE_KINDS,
                                    "netns", "node"),
        links=links,
        sriov=section.plain_entries("sriov", root.get("sriov"), m.PfSpec),
        expect=None if expect_raw is None else expect,
    )

"""Translate pydantic validation errors into vnet Diagnostics with paths, lines and hints."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from vnet.errors import Diagnostic
from vnet.topology import model as m
from vnet.topology.impair import ImpairProblem
from vnet.topology.placement import misplaced
from vnet.topology.source import UNICODE_SPACES, Path, SourceMap, char_name, format_path

# What a value of a union-typed field looks like, for "expected ..." messages.
_SHAPES = {
    "ip": "an address in CIDR form (10.0.0.1/24) or a list of them",
    "network": "a pool name or a list of pool names",
    "image": "`tiny`, {kernel: ..., initrd: ..., append: ...} or {disk: ...}",
    "owner": "a user name or numeric uid",
    "group": "a group name or numeric gid",
    "endpoints": "a list of exactly two endpoints",
}

_FIELD_HINTS = {
    "vlan": "VLAN ids are 1-4094",
    "trunk": "a list of VLAN ids, each 1-4094",
    "mtu": "MTU is 68-65535 bytes",
    "endpoints": "write two endpoints: `node:iface`, `switch` or `sriov:<pf>/vf<n>`",
    "ip": "e.g. `ip: 10.0.0.1/24`, or `ip: [10.0.0.1/30, 10.0.0.2/30]` for a node-to-node link",
    "name": "the lab name: 1-12 characters [a-z][a-z0-9-]*",
    "version": "the format version: only `version: 1` exists (or leave it out)",
    "subnet": "an IPv4 or IPv6 subnet in CIDR form, e.g. `10.10.0.0/24` or `fd00:10::/64`",
    "memory": m.MEMORY_HINT,
    "vcpus": "a VM has 1 to 64 virtual CPUs: `vcpus: 1` (the default) or more",
    "state": "a link is `state: up` (the default) or `state: down`",
}
# Hints for a value of the wrong shape at the field itself (not inside it): what to write instead.
_SHAPE_HINTS = {
    "routes": "`routes` is a list, one `- {to: ..., via: ...}` per route: "
              "`routes: [{to: default, via: 198.18.0.254}]`",
}

_TYPE_MESSAGES = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
}

_RANGE_TYPES = {"greater_than_equal": "≥", "less_than_equal": "≤", "greater_than": ">", "less_than": "<"}


def _walk(raw: Any, loc: tuple[int | str, ...]) -> Path:
    """Keep the parts of a pydantic location that exist in the raw data (drops union tags)."""
    path: list[str | int] = []
    current = raw
    for part in loc:
        if isinstance(current, dict) and str(part) in current:
            path.append(str(part))
            current = current[str(part)]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
    return tuple(path)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes inside an annotation (through Optional, tuple, dict, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    return found


def _model_at(cls: type[BaseModel], parts: Path) -> type[BaseModel] | None:
    """The model class that holds the value at `parts` below an instance of `cls`."""
    current: type[BaseModel] | None = cls
    for part in parts:
        if current is None:
            return None
        if isinstance(part, str) and part in current.model_fields:
            candidates = _models_in(current.model_fields[part].annotation)
            current = candidates[0] if candidates else None
    return current


def _unknown_key(cls: type[BaseModel], base: Path, rel: Path, key: str) -> tuple[str, str, str]:
    """(code, message, hint) for an unknown key: an option of another kind, a key of another
    level (`key-misplaced`), a close match, or the keys there are."""
    owner = _model_at(cls, rel[:-1]) or cls
    allowed = [("from" if name == "source" else name) for name in owner.model_fields]
    for registry, what in ((m.SWITCH_TYPES, "type"), (m.NODE_KINDS, "kind")):
        if owner in registry.values() and len(rel) == 1:
            holders = [k for k, c in registry.items() if key in c.model_fields]
            if holders:
                return f"{'-'.join(holders)}-only-option", f"`{key}` is not an option of {_kind_of(cls)}", \
                    f"`{key}` is only valid with {what}: {' or '.join(holders)}"
    message = f"unknown key `{key}`"
    spaced = next((char for char in key if char in UNICODE_SPACES), None)
    if spaced is not None:  # `{kind:<U+00A0>netns}`: one key, `kind: netns`, to YAML
        what, which = char_name(spaced)
        return "unknown-key", f"{message}: it holds {what} where YAML needs a space", \
            f"replace {which} with a space (it often comes from pasting)"
    if key == "<<":
        return "unknown-key", message, "YAML merge keys are not supported; use `defaults:` for shared values"
    elsewhere = misplaced(key, owner, format_path((*base, *rel[:-1])))
    if elsewhere is not None:
        return "key-misplaced", elsewhere.message, elsewhere.hint
    close = difflib.get_close_matches(key, allowed, n=1)
    return "unknown-key", message, (f"did you mean `{close[0]}`?" if close
                                    else f"valid keys: {', '.join(allowed)}")


def _kind_of(cls: type[BaseModel]) -> str:
    """`type: linux` / `kind: netns`: what a switch or node class is."""
    for name in ("type", "kind"):
        if name in cls.model_fields:
            values = typing.get_args(cls.model_fields[name].annotation)
            return f"{name}: {values[0]}" if values else name
    return cls.__name__


def _describe(err: Any, cls: type[BaseModel], base: Path, rel: Path) -> tuple[str, str, str]:
    """(code, message, hint) for one pydantic error."""
    kind = err["type"]
    loc = err["loc"]
    field = next((str(p) for p in reversed(loc) if isinstance(p, str) and p in _FIELD_HINTS), "")
    last = next((p for p in reversed(rel) if isinstance(p, str)), "")
    hint = _FIELD_HINTS.get(field, "")
    if kind == "extra_forbidden":
        return _unknown_key(cls, base, rel, str(loc[-1]))
    if kind == "memory_size":
        return "memory-size", err["msg"], m.MEMORY_HINT
    if kind == "impair":  # the model's own rules for `impair:` name their code and hint
        problem: ImpairProblem = err["ctx"]["problem"]
        return problem.code, err["msg"], problem.hint
    if kind == "missing" and isinstance(loc[-1], int):
        return "value-count", f"`{last}` needs {loc[-1] + 1} entries, got {loc[-1]}", hint
    if kind == "missing":
        return "missing-field", f"required field `{loc[-1]}` is missing", \
            hint or f"add `{loc[-1]}:` (`vnet schema` describes every field)"
    if kind == "literal_error":
        expected = err["ctx"]["expected"]
        if " or " not in expected:
            return "invalid-value", f"`{err['input']}` is not allowed (the only value is {expected})", hint
        return "invalid-value", f"`{err['input']}` is not one of {expected}", hint
    if kind in _RANGE_TYPES:
        bound = next(iter(err["ctx"].values()))
        code = f"{field}-range" if field in ("vlan", "trunk", "mtu") else "value-range"
        unit = " MiB" if field == "memory" else ""
        return code, f"{err['input']} is out of range (must be {_RANGE_TYPES[kind]} {bound}{unit})", hint
    if kind in ("too_short", "too_long"):
        return "value-count", f"`{last}` takes {err['ctx'].get('max_length', '?')} entries at most", hint
    if kind in _TYPE_MESSAGES:
        expected = _SHAPES.get(last) or _TYPE_MESSAGES[kind]
        if expected == _SHAPES.get(last):
            expected = f"expected {expected}"
        if kind.startswith("bool_") and not hint:
            hint = "write `true` or `false`"
        if loc and loc[-1] == last and last in _SHAPE_HINTS:
            hint = _shape_hint(last, err["input"])
        return "type", f"{expected}, got {_type_name(err['input'])}", hint
    return "invalid-value", err["msg"], hint


def _shape_hint(field: str, value: Any) -> str:
    """The shape hint, with the user's own route when a single route was written as a mapping."""
    if field == "routes" and isinstance(value, dict) and value and all(
            isinstance(v, str | int) for v in value.values()):
        entry = ", ".join(f"{k}: {v}" for k, v in value.items())
        return f"`routes` is a list, one `- {{to: ..., via: ...}}` per route: write `routes: [{{{entry}}}]`"
    return _SHAPE_HINTS[field]


def _blamed(err: Any) -> tuple[str, ...]:
    """The field a rule between fields blames (`jitter` beyond `delay`): the error is raised for
    the mapping that holds both, the diagnostic points at that field."""
    problem = err.get("ctx", {}).get("problem") if err["type"] == "impair" else None
    return (problem.field,) if isinstance(problem, ImpairProblem) and problem.field else ()


def _type_name(value: Any) -> str:
    names = {types.NoneType: "nothing (null)", bool: "a boolean", int: "an integer", float: "a number",
             str: "a string", dict: "a mapping", list: "a list"}
    return names.get(type(value), type(value).__name__)


def translate(exc: ValidationError, cls: type[BaseModel], raw: Any, base: Path,
              source: SourceMap) -> list[Diagnostic]:
    """One Diagnostic per distinct problem; union branches failing at one path merge into one."""
    seen: dict[tuple[Path, str], Diagnostic] = {}
    for err in exc.errors(include_url=False):
        rel = _walk(raw, (*err["loc"], *_blamed(err)))
        code, message, hint = _describe(err, cls, base, rel)
        is_key = err["type"] == "extra_forbidden"
        path = (*base, *rel)
        mark = source.locate(path, key=is_key)
        diagnostic = Diagnostic(source.file, mark.line, mark.column, code, message,
                                format_path(path), hint)
        # One diagnostic per path: union branches that fail on one value merge into the first.
        slot = (path, f"missing {err['loc'][-1]}" if code == "missing-field" else code)
        if slot not in seen:
            seen[slot] = diagnostic
    return list(seen.values())

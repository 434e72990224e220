"""Safe YAML reading that remembers where every value came from.

PyYAML's (libyaml's) event parser supplies the tokens and their marks; this module builds the
plain Python values itself, iteratively, so that:
- every value and mapping key has a line/column (SourceMap), for diagnostics;
- explicit tags (`!!python/object`, `!foo`, even `!!str`) are refused: a topology needs none;
- aliases are allowed but their expansion is bounded (alias bombs are refused), and recursive
  aliases, duplicate keys, non-string keys, deep nesting and oversized files are refused;
- plain scalars resolve by the YAML 1.2 core schema: `yes`/`no`/`on`/`off` stay strings and
  dates stay strings (no Norway problem, no datetime objects).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from vnet.errors import Diagnostic

Path = tuple[str | int, ...]

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 1_000_000  # values produced, counting every alias expansion
# Entries of one list: a lab's `links:` or `expect:` list, and any list inside an entry (the
# longest a topology needs there is a VLAN trunk, at most 4094). Checked while parsing, so that a
# flood of one repeated bad entry is refused before each entry becomes a diagnostic.
MAX_SECTION_ENTRIES = 100_000
MAX_LIST_ENTRIES = 10_000
MAX_ALIAS_VALUES = 100_000  # values produced by alias expansions alone (each copies locations)
_STD_TAG = "tag:yaml.org,2002:"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_NULL = {"", "~", "null", "Null", "NULL"}
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+$")
_INT_OCT = re.compile(r"0o[0-7]+$")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
# Characters that look like a space but are not one to YAML: pasted from web pages and chats
# (U+00A0 above all), they make an indented key part of the key's text, or a syntax error.
UNICODE_SPACES = frozenset("\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                            "\u2009\u200a\u202f\u205f\u3000\ufeff")
_INDENT_CHARS = frozenset(" \t") | UNICODE_SPACES
_FLOAT_SPECIAL = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}


@dataclass(frozen=True, slots=True)  # one per value of the document: keep it small
class Mark:
    line: int  # 1-based
    column: int  # 1-based


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a document was written."""

    file: str
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)

    def locate(self, path: Path, *, key: bool = False) -> Mark:
        """Mark of `path` (its key if `key`), else of the nearest enclosing value that has one."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            mark = self.values.get(path[:end])
            if mark is not None:
                return mark
        return Mark(1, 1)

    def alias(self, path: Path, target: Path) -> None:
        """Make `path` resolve to where `target` was written (used for values taken from defaults)."""
        if target in self.values:
            self.values[path] = self.values[target]
        if target in self.keys:
            self.keys[path] = self.keys[target]


class SourceError(Exception):
    """The document cannot be turned into values at all; carries one diagnostic."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


def resolve_plain(text: str) -> object:
    """YAML 1.2 core schema resolution of a plain (unquoted) scalar."""
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text, 10)
    if _INT_OCT.match(text):
        return int(text[2:], 8)
    if _INT_HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    return _FLOAT_SPECIAL.get(text.lower(), text)


@dataclass
class _Frame:
    path: Path
    value: dict[str, Any] | list[Any]
    anchor: str | None
    first_entry: int  # index into _Builder.entries where this subtree's locations start
    key: str | None = None


@dataclass
class _Anchor:
    value: Any
    entries: list[tuple[Path, bool, Mark]]  # (relative path, is_key, mark)


class _Builder:
    def __init__(self, file: str, text: str = "") -> None:
        self.file = file
        self.text = text  # for messages that quote a line
        self.smap = SourceMap(file)
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor | None] = {}  # None: anchored node still open
        # Locations recorded while an anchored node is open (an alias copies them); else empty.
        self.entries: list[tuple[Path, bool, Mark]] = []
        self.open_anchors = 0
        self.nodes = 0
        self.aliased = 0  # values produced by alias expansions
        self.documents = 0
        self.root: Any = None
        self.duplicates: list[Diagnostic] = []

    def fail(self, mark: Mark, code: str, message: str, hint: str) -> SourceError:
        return SourceError(Diagnostic(self.file, mark.line, mark.column, code, message, hint=hint))

    def record(self, path: Path, is_key: bool, mark: Mark) -> None:
        if self.open_anchors:
            self.entries.append((path, is_key, mark))
        (self.smap.keys if is_key else self.smap.values)[path] = mark

    def count(self, amount: int, mark: Mark) -> None:
        self.nodes += amount
        if self.nodes > MAX_NODES:
            raise self.fail(mark, "yaml-too-large", f"document expands to more than {MAX_NODES} values",
                            "aliases (*name) multiply content; write the values out or use `defaults:`")

    def child_path(self, mark: Mark) -> Path | None:
        """Path for the next value, or None if the next scalar is a mapping key."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            self.check_length(top, mark)
            return (*top.path, len(top.value))
        if top.key is None:
            return None
        return (*top.path, top.key)

    def check_length(self, frame: _Frame, mark: Mark) -> None:
        limit = MAX_SECTION_ENTRIES if len(frame.path) == 1 else MAX_LIST_ENTRIES
        if len(frame.value) >= limit:
            where = format_path(frame.path) or "the document"
            raise self.fail(mark, "yaml-list-too-long", f"`{where}` holds more than {limit} entries",
                            "no topology needs a list this long (a trunk holds at most 4094 VLANs)")

    def place(self, value: Any) -> None:
        if not self.stack:
            self.root = value
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
        else:
            assert top.key is not None
            top.value.setdefault(top.key, value)
            top.key = None

    def take_key(self, event: Any, mark: Mark) -> None:
        top = self.stack[-1]
        key = str(event.value)
        if key == "<<" and event.implicit[0]:
            raise self.fail(mark, "yaml-merge-key", "YAML merge keys (`<<`) are not supported",
                            "write the values out, or put shared values in `defaults:`")
        path = (*top.path, key)
        if key in top.value:
            first = self.smap.keys.get(path, mark)
            self.duplicates.append(Diagnostic(
                self.file, mark.line, mark.column, "yaml-duplicate-key",
                f"key `{key}` appears twice in this mapping (first on line {first.line})",
                attr=format_path(top.path), hint="remove or rename one of them; YAML keeps only one"))
        self.record(path, True, mark)
        top.key = key

    def open_anchor(self, anchor: str | None) -> None:
        if anchor is not None:
            self.anchors[anchor] = None
            self.open_anchors += 1

    def close_anchor(self, anchor: str | None, path: Path, value: Any, first_entry: int) -> None:
        if anchor is None:
            return
        cut = len(path)
        rel = [(p[cut:], is_key, m) for p, is_key, m in self.entries[first_entry:]]
        self.anchors[anchor] = _Anchor(value, rel)
        self.open_anchors -= 1
        if not self.open_anchors:
            self.entries.clear()

    def on_event(self, event: Any) -> None:
        mark = Mark(event.start_mark.line + 1, event.start_mark.column + 1)
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, mark)

    def check_tag(self, event: Any, mark: Mark) -> None:
        tag = getattr(event, "tag", None)
        if tag not in (None, "!"):
            shown = "!!" + tag[len(_STD_TAG):] if tag.startswith(_STD_TAG) else tag  # as written
            raise self.fail(mark, "yaml-tag", f"YAML tag `{shown}` is not allowed",
                            "topology files use plain values only; remove the tag")

    def on_scalar(self, event: Any, mark: Mark) -> None:
        self.check_tag(event, mark)
        if event.implicit[0] and event.value[:1] in UNICODE_SPACES:  # a plain scalar: the space was
            bad = indentation_problem(self.file, self.text, mark.line)  # indentation
            if bad is not None:
                raise SourceError(bad)
        if "\0" in event.value:  # ("\0" in a quoted string): no name, path or argument may hold one
            raise self.fail(mark, "yaml-nul", "a NUL character (\\0) in a string",
                            "remove it: no name, path or option of a topology can contain NUL")
        path = self.child_path(mark)
        if path is None:
            self.take_key(event, mark)
            return
        self.count(1, mark)
        try:
            value = resolve_plain(event.value) if event.implicit[0] else event.value
        except ValueError:  # an integer longer than Python's int_max_str_digits (4300)
            raise self.fail(mark, "yaml-number-too-long", f"a {len(event.value)}-digit number",
                            "no topology value is that long; quote it if it is meant as text") from None
        self.open_anchor(event.anchor)
        self.record(path, False, mark)
        self.close_anchor(event.anchor, path, value, len(self.entries) - 1)
        self.place(value)

    def on_collection_start(self, event: Any, mark: Mark) -> None:
        self.check_tag(event, mark)
        path = self.child_path(mark)
        if path is None:
            raise self.fail(mark, "yaml-complex-key", "mapping keys must be plain strings",
                            "write the key as a plain word")
        if len(self.stack) >= MAX_DEPTH:
            raise SourceError(_too_deep(self.file, mark.line, mark.column))
        self.count(1, mark)
        self.open_anchor(event.anchor)
        self.record(path, False, mark)
        container: dict[str, Any] | list[Any] = {} if isinstance(event, yaml.MappingStartEvent) else []
        self.stack.append(_Frame(path, container, event.anchor, len(self.entries) - 1))

    def on_collection_end(self, event: Any, mark: Mark) -> None:
        frame = self.stack.pop()
        self.close_anchor(frame.anchor, frame.path, frame.value, frame.first_entry)
        self.place(frame.value)

    def on_alias(self, event: Any, mark: Mark) -> None:
        path = self.child_path(mark)
        if path is None:
            raise self.fail(mark, "yaml-complex-key", "an alias cannot be a mapping key",
                            "write the key as a plain word")
        if event.anchor not in self.anchors:
            raise self.fail(mark, "yaml-alias", f"alias *{event.anchor} names no anchor defined above",
                            "define `&name` before using `*name`")
        anchor = self.anchors[event.anchor]
        if anchor is None:
            raise self.fail(mark, "yaml-alias", f"alias *{event.anchor} refers to itself",
                            "recursive structures are not allowed")
        self.count(max(1, len(anchor.entries)), mark)
        self.aliased += len(anchor.entries)
        if self.aliased > MAX_ALIAS_VALUES:
            raise self.fail(mark, "yaml-too-large",
                            f"aliases expand to more than {MAX_ALIAS_VALUES} values",
                            "aliases (*name) multiply content; write the values out or use `defaults:`")
        for rel, is_key, m in anchor.entries:
            self.record((*path, *rel), is_key, m if rel else mark)
        self.place(anchor.value)

    def on_document_start(self, event: Any, mark: Mark) -> None:
        self.documents += 1
        if self.documents > 1:
            raise self.fail(mark, "yaml-multi-document", "the file holds more than one YAML document",
                            "put one lab per file; remove the `---` separator")


_HANDLERS: dict[type, Any] = {
    yaml.ScalarEvent: _Builder.on_scalar,
    yaml.MappingStartEvent: _Builder.on_collection_start,
    yaml.SequenceStartEvent: _Builder.on_collection_start,
    yaml.MappingEndEvent: _Builder.on_collection_end,
    yaml.SequenceEndEvent: _Builder.on_collection_end,
    yaml.AliasEvent: _Builder.on_alias,
    yaml.DocumentStartEvent: _Builder.on_document_start,
}


def format_path(path: Path) -> str:
    """("links", 3, "vlan") -> "links[3].vlan"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _events(text: str) -> Iterator[Any]:
    loader = _Loader(text)
    try:
        while loader.check_event():
            yield loader.get_event()
    finally:
        loader.dispose()


def _too_deep(file: str, line: int, column: int) -> Diagnostic:
    return Diagnostic(file, line, column, "yaml-too-deep", f"nesting deeper than {MAX_DEPTH} levels",
                      hint="a topology file is at most a few levels deep")


def char_name(char: str) -> tuple[str, str]:
    """("a tab", "the tab"): how a message and its hint name an indentation character."""
    if char == "\t":
        return "a tab", "the tab"
    if char == "\u00a0":
        return "a non-breaking space (U+00A0)", "the non-breaking space"
    name = unicodedata.name(char, "space").lower()
    return f"a Unicode space ({name}, U+{ord(char):04X})", "the Unicode space"


def indentation_problem(file: str, text: str | None, line: int) -> Diagnostic | None:
    """A diagnostic when line `line` (1-based) of `text` is indented with anything but spaces."""
    if not text or line < 1:
        return None
    lines = text.split("\n", line)
    if len(lines) < line:
        return None
    row = lines[line - 1]
    indent = row[:len(row) - len(row.lstrip("".join(_INDENT_CHARS)))]
    column = next((k for k, char in enumerate(indent) if char != " "), None)
    if column is None or column == len(row):
        return None
    what, which = char_name(indent[column])
    return Diagnostic(file, line, column + 1, "yaml-indentation",
                      f"line {line} is indented with {what}: YAML indents with spaces only",
                      hint=f"replace {which} with spaces (it often comes from pasting; most editors "
                           "can show and convert it)")


def _parser_diagnostic(file: str, text: str, exc: yaml.YAMLError) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    else:
        position = int(getattr(exc, "position", 0))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context and context_mark is not None and context_mark.line + 1 != line:
        context = f"{context} that started on line {context_mark.line + 1}"
    if "maximum nesting depth" in str(problem):  # newer libyaml refuses 1000 levels before we see them
        return _too_deep(file, line, column)
    # The scanner's "cannot start any token" or "violates indentation" is a tab in most files.
    marks = (line, context_mark.line + 1 if context_mark is not None else 0)
    bad = next((d for d in (indentation_problem(file, text, k) for k in marks) if d is not None), None)
    if bad is not None:
        return bad
    message = f"{problem} ({context})" if context else str(problem)
    hint = "check indentation, quoting and `key: value` spacing near this line"
    rows = text.split("\n")
    spaced = next(((k, c) for k in sorted(set(marks)) if 0 < k <= len(rows)
                   for c, char in enumerate(rows[k - 1]) if char in UNICODE_SPACES), None)
    if spaced is not None:  # `ip:<U+00A0>10.0.0.1/24`: YAML sees one word, not a key and a value
        what, which = char_name(rows[spaced[0] - 1][spaced[1]])
        hint = (f"line {spaced[0]} holds {what} at column {spaced[1] + 1}, where YAML needs a space: "
                f"replace {which} with a space (it often comes from pasting)")
    return Diagnostic(file, line, column, "yaml-syntax", f"invalid YAML: {message}", hint=hint)


def parse_text(text: str, file: str) -> tuple[Any, SourceMap, list[Diagnostic]]:
    """YAML text -> (plain value, SourceMap, non-fatal diagnostics). Raises SourceError."""
    builder = _Builder(file, text)
    try:
        for event in _events(text):
            builder.on_event(event)
    except yaml.YAMLError as exc:
        raise SourceError(_parser_diagnostic(file, text, exc)) from None
    except RecursionError:  # libyaml is iterative; kept for the pure-Python fallback
        raise builder.fail(Mark(1, 1), "yaml-too-deep", "nesting too deep", "flatten the document") from None
    return builder.root, builder.smap, builder.duplicates


def read_file(path: str) -> tuple[Any, SourceMap, list[Diagnostic]]:
    """Read and parse a topology file. Raises SourceError for unreadable or unparsable files."""
    def fail(code: str, message: str, hint: str) -> SourceError:
        return SourceError(Diagnostic(path, 0, 0, code, message, hint=hint))

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise fail("file-unreadable", f"cannot read the file: {exc.strerror}",
                   "check the path and its permissions") from None
    if len(data) > MAX_FILE_BYTES:
        raise fail("file-too-large", f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                   "a topology this large is not supported; split it into several labs")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SourceError(Diagnostic(path, line, column, "file-encoding",
                                     f"file is not UTF-8 (byte {exc.start}: {data[exc.start]:#04x})",
                                     hint="save it as UTF-8")) from None
    return parse_text(text, path)

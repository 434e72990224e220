"""Every diagnostic code vnet can emit has a golden test, and every golden code still exists.

The list of codes is read from the source, not kept by hand: an AST scan of `vnet/` finds every
function or dataclass that takes a `code: str` (`CheckContext.report`/`warn`, the loader's
`error`, the YAML builder's `fail`, `Diagnostic`, `ImageProblem`, ...) and resolves what each call
passes as its code: a literal, both arms of a conditional, a variable assigned in the function,
an element of a tuple returned by a helper (`ifname_problem`, `_describe`, `_unknown_key`). An
argument the scan cannot resolve fails the test, so a new way of producing codes cannot slip
past it. Codes built with an f-string from the model (`<kinds>-only-option`) are enumerated by
calling the producing function for every key of every switch type and node kind.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from vnet.topology import model as m
from vnet.topology.pydantic_errors import _unknown_key

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "vnet"
GOLDEN = REPO / "tests" / "golden"
# `FILE:LINE:COL: error[code]: ...` (hint lines are indented and never match).
_GOLDEN_LINE = re.compile(r"^\S.*?: (?:error|warning)\[([^\]]+)\]: ")
# Codes the scan must find: one per way of producing a code, so a broken scan cannot pass.
_KNOWN = {
    "tunnel-remote": "ctx.report literal",
    "route-gateway-unreachable": "ctx.warn literal",
    "unknown-switch-type": "conditional in the loader",
    "yaml-merge-key": "_Builder.fail",
    "file-unreadable": "read_file's local fail()",
    "not-a-topology": "Diagnostic(...) literal",
    "image-missing": "ImageProblem dataclass",
    "ifname-too-long": "tuple returned by ifname_problem",
    "unknown-key": "tuple returned by _unknown_key through _describe",
    "vlan-range": "f-string expanded over its guard",
    "mtu-mismatch": "late segment warning",
}

# Codes a small golden file cannot show, each with why and the test file that asserts it instead.
_NOT_GOLDEN: dict[str, tuple[str, str]] = {
    "file-too-large": ("needs a 16 MiB file", "tests/unit/test_source.py"),
    "file-unreadable": ("a golden case is a file that exists", "tests/unit/test_checks.py"),
    "too-many-errors": ("needs 1000 errors, a 1000-line golden", "tests/unit/test_checks.py"),
    "yaml-list-too-long": ("needs a list of 10,000 entries", "tests/unit/test_source.py"),
}

_Scope = ast.FunctionDef | ast.AsyncFunctionDef | ast.Module
_Def = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class _Sink:
    """A callable taking a code: where the code goes in a call (`self` not counted)."""

    index: int
    method: bool  # called as `obj.name(...)`


@dataclass
class CodeScan:
    codes: dict[str, str] = field(default_factory=dict)  # code -> first place it is produced
    patterns: dict[str, str] = field(default_factory=dict)  # regex of an f-string code -> place
    unresolved: list[str] = field(default_factory=list)  # places whose code the scan cannot read


def _is_str(annotation: ast.expr | None) -> bool:
    if isinstance(annotation, ast.Name):
        return annotation.id == "str"
    return isinstance(annotation, ast.Constant) and annotation.value == "str"


def _is_dataclass(node: ast.ClassDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Name | ast.Attribute) and \
                (target.id if isinstance(target, ast.Name) else target.attr) == "dataclass":
            return True
    return False


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _own_nodes(scope: _Scope) -> Iterator[ast.AST]:
    """Nodes of `scope` outside its nested functions and classes."""
    stack: list[ast.AST] = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


class _Scanner:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.trees = {p: ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in sorted(root.rglob("*.py"))}
        self.parents: dict[ast.AST, ast.AST] = {}
        self.where: dict[ast.AST, Path] = {}
        for path, tree in self.trees.items():
            self.parents.update(_parents(tree))
            self.where.update(dict.fromkeys(ast.walk(tree), path))
        self.sinks: dict[str, set[_Sink]] = {}
        self.sink_params: set[ast.arg] = set()  # `code` parameters of sinks: filled by their callers
        self.functions: dict[Path, dict[str, list[_Def]]] = {path: {} for path in self.trees}
        self.imports = {path: self._imports(tree) for path, tree in self.trees.items()}
        self.scan = CodeScan()
        self._find_sinks()

    def _find_sinks(self) -> None:
        for tree in self.trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.functions[self.where[node]].setdefault(node.name, []).append(node)
                    params = [*node.args.posonlyargs, *node.args.args]
                    method = isinstance(self.parents.get(node), ast.ClassDef)
                    for k, arg in enumerate(params):
                        if arg.arg == "code" and _is_str(arg.annotation):
                            self.sinks.setdefault(node.name, set()).add(_Sink(k - method, method))
                            self.sink_params.add(arg)
                    for arg in node.args.kwonlyargs:
                        if arg.arg == "code" and _is_str(arg.annotation):
                            self.sinks.setdefault(node.name, set()).add(_Sink(-1, method))
                            self.sink_params.add(arg)
                elif isinstance(node, ast.ClassDef) and _is_dataclass(node):
                    fields = [s.target.id for s in node.body
                              if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                              and "ClassVar" not in ast.unparse(s.annotation)]
                    for s in node.body:
                        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name) \
                                and s.target.id == "code" and _is_str(s.annotation):
                            self.sinks.setdefault(node.name, set()).add(_Sink(fields.index("code"), False))

    def _module(self, dotted: str) -> Path | None:
        parts = dotted.split(".")
        if parts[0] != self.root.name:
            return None
        base = self.root.parent.joinpath(*parts)
        return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p in self.trees), None)

    def _imports(self, tree: ast.Module) -> dict[str, tuple[Path, str | None]]:
        """Local name -> (module, its name there; None for the module itself), for the package."""
        found: dict[str, tuple[Path, str | None]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    module = self._module(f"{node.module}.{alias.name}")
                    if module is not None:
                        found[alias.asname or alias.name] = (module, None)
                    elif (module := self._module(node.module)) is not None:
                        found[alias.asname or alias.name] = (module, alias.name)
        return found

    def _place(self, node: ast.AST) -> str:
        return f"{self.where[node].relative_to(self.root.parent)}:{getattr(node, 'lineno', 0)}"

    def _scope(self, node: ast.AST) -> _Scope:
        current = self.parents.get(node)
        while current is not None and not isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef):
            current = self.parents.get(current)
        if current is None:
            return self.trees[self.where[node]]
        return current

    def run(self) -> CodeScan:
        for tree in self.trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    for expr in self._code_args(node):
                        self._resolve(expr, self._scope(node), {}, 0)
        return self.scan

    def _code_args(self, call: ast.Call) -> list[ast.expr]:
        func = call.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        sinks = self.sinks.get(name, set())
        # `obj.fail(...)` is the method, `fail(...)` the local function or the class.
        chosen = {s for s in sinks if s.method == isinstance(func, ast.Attribute)} or sinks
        found = [kw.value for kw in call.keywords if kw.arg == "code" and sinks]
        for sink in chosen:
            if 0 <= sink.index < len(call.args) and not isinstance(call.args[sink.index], ast.Starred):
                found.append(call.args[sink.index])
        return found

    def _add(self, code: str, node: ast.AST) -> None:
        self.scan.codes.setdefault(code, self._place(node))

    def _resolve(self, expr: ast.expr, scope: _Scope, env: dict[str, str], depth: int) -> None:
        """Record the code(s) `expr` can evaluate to; `env` binds names for an f-string."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            self._add(expr.value, expr)
        elif isinstance(expr, ast.IfExp):
            self._resolve_guarded(expr, scope, env, depth)
            self._resolve(expr.orelse, scope, env, depth)
        elif isinstance(expr, ast.BoolOp):
            for value in expr.values:
                self._resolve(value, scope, env, depth)
        elif isinstance(expr, ast.JoinedStr):
            self._resolve_fstring(expr, env)
        elif isinstance(expr, ast.Attribute) and expr.attr == "code":
            pass  # passes on a code produced elsewhere (`problem.code`): its producer is a sink
        elif isinstance(expr, ast.Name):
            self._resolve_name(expr, scope, None, env, depth)
        elif isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Constant) \
                and isinstance(expr.slice.value, int):
            self._resolve_item(expr.value, expr.slice.value, scope, depth)
        else:
            self._unresolved(expr)

    def _unresolved(self, node: ast.AST) -> None:
        self.scan.unresolved.append(f"{self._place(node)}: {ast.unparse(node)}")

    def _resolve_guarded(self, expr: ast.IfExp, scope: _Scope, env: dict[str, str], depth: int) -> None:
        """`f"{x}-range" if x in ("vlan", "mtu") else ...`: the f-string for each allowed x."""
        test = expr.test
        if isinstance(expr.body, ast.JoinedStr) and isinstance(test, ast.Compare) \
                and isinstance(test.left, ast.Name) and isinstance(test.ops[0], ast.In) \
                and len(test.ops) == 1 and isinstance(test.comparators[0], ast.Tuple | ast.List | ast.Set):
            choices = [c.value for c in test.comparators[0].elts if isinstance(c, ast.Constant)]
            if len(choices) == len(test.comparators[0].elts) and all(isinstance(c, str) for c in choices):
                for choice in choices:
                    self._resolve_fstring(expr.body, {**env, test.left.id: str(choice)})
                return
        self._resolve(expr.body, scope, env, depth)

    def _resolve_fstring(self, expr: ast.JoinedStr, env: dict[str, str]) -> None:
        text, pattern = "", ""
        for part in expr.values:
            if isinstance(part, ast.Constant):
                text += str(part.value)
                pattern += re.escape(str(part.value))
            elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) \
                    and part.value.id in env:
                text += env[part.value.id]
                pattern += re.escape(env[part.value.id])
            else:
                text, pattern = "", pattern + "[a-z0-9-]+"
        if pattern == re.escape(text):
            self._add(text, expr)
        else:
            self.scan.patterns.setdefault(pattern, self._place(expr))

    def _assignments(self, name: str, scope: _Scope) -> Iterator[tuple[ast.expr, int | None]]:
        """(value, element index or None) of each assignment to `name` in `scope`."""
        for node in _own_nodes(scope):
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and target.id == name:
                        yield node.value, None
                    elif isinstance(target, ast.Tuple):
                        for k, element in enumerate(target.elts):
                            if isinstance(element, ast.Name) and element.id == name:
                                yield node.value, k

    def _resolve_name(self, expr: ast.Name, scope: _Scope, item: int | None,
                      env: dict[str, str], depth: int) -> None:
        if depth > 8:
            self._unresolved(expr)
            return
        if not isinstance(scope, ast.Module):
            args = scope.args
            for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs):
                if arg.arg == expr.id:
                    if arg not in self.sink_params or item is not None:
                        self._unresolved(expr)  # a parameter that is not a sink's code
                    return
        found = list(self._assignments(expr.id, scope))
        if not found:
            self._unresolved(expr)
        for value, k in found:
            if k is None and item is None:
                self._resolve(value, scope, env, depth + 1)
            elif k is None and item is not None:
                self._resolve_item(value, item, scope, depth + 1)
            elif k is not None and item is None:
                self._resolve_item(value, k, scope, depth + 1)
            else:
                self._unresolved(expr)  # an element of an element: not a shape vnet uses

    def _resolve_item(self, expr: ast.expr, k: int, scope: _Scope, depth: int) -> None:
        """The codes element `k` of the tuple `expr` can be."""
        if isinstance(expr, ast.Tuple) and k < len(expr.elts):
            self._resolve(expr.elts[k], scope, {}, depth)
        elif isinstance(expr, ast.IfExp):
            self._resolve_item(expr.body, k, scope, depth)
            self._resolve_item(expr.orelse, k, scope, depth)
        elif isinstance(expr, ast.Name):
            self._resolve_name(expr, scope, k, {}, depth)
        elif isinstance(expr, ast.Call) and self._callee(expr):
            for function in self._callee(expr):
                for node in _own_nodes(function):
                    if isinstance(node, ast.Return) and node.value is not None and not (
                            isinstance(node.value, ast.Constant) and node.value.value is None):
                        self._resolve_item(node.value, k, function, depth + 1)
        else:
            self._unresolved(expr)

    def _callee(self, call: ast.Call) -> list[_Def]:
        """The functions a call can run: in its module, imported, or (a method) any of that name."""
        here = self.where[call]
        func = call.func
        if isinstance(func, ast.Name):
            if func.id in self.functions[here]:
                return self.functions[here][func.id]
            module, name = self.imports[here].get(func.id, (here, None))
            return self.functions[module].get(name or "", [])
        if isinstance(func, ast.Attribute):
            if isinstance(func.value, ast.Name) and func.value.id in self.imports[here]:
                module, name = self.imports[here][func.value.id]
                return self.functions[module].get(func.attr, []) if name is None else []
            return self.functions[here].get(func.attr) or \
                [f for defs in self.functions.values() for f in defs.get(func.attr, [])]
        return []


@cache
def scan_codes(root: Path = PACKAGE) -> CodeScan:
    """Every code the package under `root` produces, with the place that produces it."""
    return _Scanner(root).run()


def enumerated_codes() -> set[str]:
    """The f-string codes for the model: `<kinds>-only-option` for a key of another kind."""
    codes: set[str] = set()
    for registry in (m.SWITCH_TYPES, m.NODE_KINDS):
        keys = {key for cls in registry.values() for key in cls.model_fields}
        for cls in registry.values():
            for key in sorted(keys - set(cls.model_fields)):
                codes.add(_unknown_key(cls, (), (key,), key)[0])
    return codes


def all_codes() -> dict[str, str]:
    """Source codes and enumerated ones (code -> where it comes from)."""
    scan = scan_codes()
    return {**dict.fromkeys(sorted(enumerated_codes()), "the model (enumerated)"), **scan.codes}


def golden_codes() -> dict[str, set[str]]:
    """code -> golden files (`bad/NAME` or `warn/NAME`) whose `.expected` shows it."""
    found: dict[str, set[str]] = {}
    for expected in sorted(GOLDEN.glob("*/*.expected")):
        for line in expected.read_text(encoding="utf-8").splitlines():
            match = _GOLDEN_LINE.match(line)
            if match:
                found.setdefault(match[1], set()).add(f"{expected.parent.name}/{expected.stem}")
    return found


def test_scan_finds_the_codes() -> None:
    """Guards the scan itself: it must find codes of every producing shape and read every call."""
    scan = scan_codes()
    assert not scan.unresolved, "the scan cannot tell which code these produce " \
        f"(teach tests/test_codes.py the new shape): {scan.unresolved}"
    missing = {code: how for code, how in _KNOWN.items() if code not in scan.codes}
    assert not missing, f"the scan misses codes it must find: {missing}"
    assert len(scan.codes) >= 80, sorted(scan.codes)
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", code) for code in scan.codes), sorted(scan.codes)


def test_scan_reports_unresolvable_codes(tmp_path: Path) -> None:
    """A code the scan cannot read is reported, not skipped: the completeness check can fail."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "mod.py").write_text(
        "def report(path: str, code: str) -> None: ...\n"
        "def check(x: str) -> None:\n"
        "    report('p', 'made-up-code')\n"
        "    report('p', x.upper())\n", encoding="utf-8")
    scan = _Scanner(package).run()
    assert scan.codes == {"made-up-code": "pkg/mod.py:3"}
    assert scan.unresolved == ["pkg/mod.py:4: x.upper()"]


def test_enumerated_codes_cover_the_fstring_codes() -> None:
    """Each code the scan sees only as a pattern is enumerated, and each enumerated code fits one."""
    patterns = scan_codes().patterns
    codes = enumerated_codes()
    assert {"ovs-only-option", "vm-only-option"} <= codes
    uncovered = [p for p in patterns if not any(re.fullmatch(p, c) for c in codes)]
    assert not uncovered, f"f-string codes with no enumeration in tests/test_codes.py: {uncovered}"
    stray = [c for c in codes if not any(re.fullmatch(p, c) for p in patterns)]
    assert not stray, f"enumerated codes the source no longer builds: {stray}"


def test_every_code_has_a_golden_file() -> None:
    """A check can only be deleted with a golden test going red if its code is in a golden file."""
    golden = golden_codes()
    missing = {code: where for code, where in sorted(all_codes().items())
               if code not in golden and code not in _NOT_GOLDEN}
    assert not missing, "codes without a golden file under tests/golden/bad or tests/golden/warn " \
        f"(code: where it is produced): {missing}"


def test_every_golden_code_exists_in_the_source() -> None:
    """A golden file showing a code vnet no longer produces is stale (or the scan is broken)."""
    codes = all_codes()
    stale = {code: sorted(files) for code, files in sorted(golden_codes().items()) if code not in codes}
    assert not stale, f"golden codes the source does not produce: {stale}"


def test_codes_without_golden_are_tested_elsewhere() -> None:
    """Each exemption still names a real code, has no golden yet, and another test asserts it."""
    codes, golden = all_codes(), golden_codes()
    for code, (_why, test_file) in _NOT_GOLDEN.items():
        assert code in codes, f"{code} is exempted but the source no longer produces it"
        assert code not in golden, f"{code} has a golden file now: remove it from _NOT_GOLDEN"
        text = (REPO / test_file).read_text(encoding="utf-8")
        assert f'"{code}"' in text, f"{test_file} never checks {code}"

"""Find every place a module could run a command through a shell (an AST scan, no import).

Flagged: `shell=` (anything but a literal False) on any call; os.system, os.popen,
subprocess.getoutput/getstatusoutput and asyncio.create_subprocess_shell, called as attributes of
those modules or imported from them; and a literal command line `[<shell>, "-c", ...]` handed to
a process-starting function of subprocess, os or asyncio. A `["sh", "-c", ...]` given to anything
else (vnet's guest agent runs one inside a guest) starts no shell on the host and is not flagged.
"""

from __future__ import annotations

import ast
from pathlib import Path

MODULES = frozenset({"os", "subprocess", "asyncio"})
SHELL_FUNCTIONS = frozenset({("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
                             ("subprocess", "getstatusoutput"), ("asyncio", "create_subprocess_shell")})
RUNNERS = frozenset({"run", "call", "check_call", "check_output", "Popen", "posix_spawn", "posix_spawnp",
                     "execv", "execve", "execvp", "execvpe", "execl", "execlp", "execle", "execlpe",
                     "spawnv", "spawnve", "spawnvp", "spawnvpe", "create_subprocess_exec"})
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "/bin/sh", "/bin/bash", "/bin/dash",
                    "/usr/bin/sh", "/usr/bin/bash"})


def _imports(tree: ast.AST) -> dict[str, tuple[str, str]]:
    """Local name -> (module, function) for `from os|subprocess|asyncio import ...`."""
    return {(alias.asname or alias.name): (node.module, alias.name)
            for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module in MODULES
            for alias in node.names}


def _target(func: ast.expr, imported: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """(module, function) a call goes to, when it is one of os, subprocess or asyncio."""
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in MODULES:
        return func.value.id, func.attr
    return imported.get(func.id) if isinstance(func, ast.Name) else None


def _shell_argv(node: ast.expr) -> bool:
    """A list or tuple literal that starts with a shell and `-c`."""
    if not isinstance(node, ast.List | ast.Tuple) or len(node.elts) < 2:
        return False
    first, second = node.elts[0], node.elts[1]
    return (isinstance(first, ast.Constant) and first.value in SHELLS
            and isinstance(second, ast.Constant) and second.value == "-c")


def _problem(call: ast.Call, imported: dict[str, tuple[str, str]]) -> str | None:
    if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
           for k in call.keywords):
        return "a call with shell="
    target = _target(call.func, imported)
    if target in SHELL_FUNCTIONS:
        return f"{target[0]}.{target[1]}()"
    if target is not None and target[1] in RUNNERS and any(_shell_argv(a) for a in call.args):
        return f"{target[0]}.{target[1]}([<shell>, '-c', ...])"
    return None


def scan_source(text: str, filename: str = "<string>") -> list[str]:
    """`file:line: what` for every shell use in `text`."""
    tree = ast.parse(text, filename)
    imported = _imports(tree)
    return [f"{filename}:{node.lineno}: {what}" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and (what := _problem(node, imported)) is not None]


def scan_tree(root: Path) -> tuple[int, list[str]]:
    """(modules scanned, problems) for every .py file under `root`."""
    files = sorted(root.rglob("*.py"))
    problems = [p for path in files for p in scan_source(path.read_text(encoding="utf-8"), str(path))]
    return len(files), problems

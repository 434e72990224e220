"""No module imports from a layer above it (docs/architecture.md, "Layers"): the rtnetlink codec
stands alone, the topology knows no host, mechanisms know no pipeline, and each mechanism builds
only on those listed before it in vnet/mechanisms/__init__.py."""

from __future__ import annotations

import ast
from pathlib import Path

import vnet
from vnet.mechanisms import MECHANISMS

ROOT = Path(vnet.__file__).parent

# Lowest first; a module may import from its own layer and the ones before it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("vnet.errors", "vnet.netlink", "vnet.marks"),
    ("vnet.topology",),
    ("vnet.resources", "vnet.progress", "vnet.interrupt"),
    ("vnet.host", "vnet.vm"),
    ("vnet.mechanisms.base",),
    *((f"vnet.mechanisms.{m.name}",) for m in MECHANISMS),
    ("vnet.mechanisms",),
    ("vnet.pipeline",),
    ("vnet.verification",),
    ("vnet.capture",),
    ("vnet.attach_info", "vnet.api"),
    ("vnet.cli", "vnet.testing", "vnet"),
)


def layer(module: str) -> int:
    """The layer of the longest prefix that names `module` (or a package holding it)."""
    found = [(len(prefix), i) for i, group in enumerate(LAYERS) for prefix in group
             if module == prefix or module.startswith(prefix + ".")]
    assert found, f"{module} is in no layer: add it to LAYERS"
    return max(found)[1]


def imports(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in found if name == "vnet" or name.startswith("vnet.")]


def test_mechanisms_are_listed_in_layer_order() -> None:
    assert MECHANISMS[0].name == "kernel"  # every mechanism builds on the kernel's
    assert len({m.name for m in MECHANISMS}) == len(MECHANISMS)


def test_no_module_imports_from_a_layer_above_it() -> None:
    upward = []
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        for line, name in imports(path):
            if name != "vnet" and layer(name) > layer(module):
                upward.append(f"{path.relative_to(ROOT.parent)}:{line}: {module} imports {name}")
    assert not upward, "\n".join(upward)


def test_the_netlink_codec_imports_nothing_else_of_vnet() -> None:
    """The reaper runs it with `python -I -S` beside the standard library only."""
    others = [f"{path.name}: {name}" for path in (ROOT / "netlink").rglob("*.py")
              for _, name in imports(path) if not name.startswith("vnet.netlink")]
    assert not others, others

"""The `vnet` command group, and the commands that only read topology files (validate, graph, schema)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from vnet import __version__
from vnet.errors import EX_DATAERR, Diagnostic, TopologyError, UsageError
from vnet.topology import diagnose, load
from vnet.topology.render import BINARY_FORMATS, FORMATS, SUFFIXES


def _echo_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        click.echo(diagnostic.format(), err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vnet")
def cli() -> None:
    """Declare virtual networks in a file, build them on this host, and prove them."""


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the diagnostics as JSON.")
def validate(files: tuple[str, ...], as_json: bool) -> None:
    """Check topology FILES; exit 65 with every problem if any is invalid."""
    failed = False
    report: list[dict[str, Any]] = []
    for path in files:
        lab, diagnostics = diagnose(path)
        failed = failed or lab is None
        ordered = TopologyError(diagnostics).diagnostics
        if as_json:
            report.append({"file": path, "valid": lab is not None,
                           "diagnostics": [d.to_json() for d in ordered]})
            continue
        _echo_diagnostics(ordered)
        if lab is not None:
            topo = lab.topology
            click.echo(f"{path}: ok (lab {topo.name}: {len(topo.nodes)} nodes, "
                       f"{len(topo.switches)} switches, {len(lab.links)} links)")
        else:
            errors = sum(d.is_error for d in ordered)
            click.echo(f"{path}: {errors} error(s)", err=True)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    if failed:
        sys.exit(EX_DATAERR)


def _graph_format(fmt: str | None, output: str | None) -> str:
    """An explicit --format; else the one `-o`'s suffix names; else DOT."""
    if fmt is not None:
        return fmt
    if output is None:
        return "dot"
    suffix = os.path.splitext(output)[1].lower()
    if suffix not in SUFFIXES:
        raise UsageError(f"cannot tell the format of {output!r} from its suffix {suffix or '(none)'} "
                         f"(known: {', '.join(SUFFIXES)})",
                         f"end the file name in one of those, or give --format {'|'.join(FORMATS)}")
    return SUFFIXES[suffix]


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format (default: from -o's suffix .dot/.gv, .mmd, .svg, .png; else dot). "
                   "svg and png need Graphviz `dot`.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not to stdout.")
def graph(file: str, fmt: str | None, output: str | None) -> None:
    """Draw the lab in FILE: switches, nodes with their interfaces' MACs and addresses, links
    coloured by VLAN, L2 segments tinted."""
    from vnet.topology.graph import build_graph  # noqa: PLC0415 (networkx: only when drawing)
    from vnet.topology.render import RENDERERS  # noqa: PLC0415

    fmt = _graph_format(fmt, output)
    if output is None and fmt in BINARY_FORMATS and sys.stdout.isatty():  # before any work
        raise UsageError(f"refusing to write {fmt} (binary) to a terminal",
                         f"write it to a file with -o lab.{fmt}, or pipe it: "
                         f"vnet graph --format {fmt} {file} | display")
    data = RENDERERS[fmt](build_graph(load(file)))
    if output is None:
        sys.stdout.buffer.write(data)
        return
    with open(output, "wb") as handle:
        handle.write(data)
    click.echo(f"wrote {output} ({fmt}, {len(data)} bytes)", err=True)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the topology format (for editors' YAML language servers)."""
    from vnet.topology.model import Topology  # noqa: PLC0415 (pydantic: not for every command)

    document = Topology.model_json_schema(by_alias=True, mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    click.echo(json.dumps(document, indent=2, sort_keys=True))

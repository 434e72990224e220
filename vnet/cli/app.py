"""The `vnet` command group, and the commands that only read topology files (validate, graph, schema)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from vnet import __version__
from vnet.errors import EX_DATAERR, Diagnostic, TopologyError
from vnet.topology import diagnose, load
from vnet.topology.model import Topology
from vnet.topology.render import FORMATS


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


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="dot",
              show_default=True, help="Output format (svg and png need Graphviz `dot`).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not to stdout.")
def graph(file: str, fmt: str, output: str | None) -> None:
    """Draw the lab in FILE: switches, nodes, links, VLANs and addresses."""
    from vnet.topology.graph import build_graph  # noqa: PLC0415 (networkx: only when drawing)
    from vnet.topology.render import RENDERERS  # noqa: PLC0415

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
    document = Topology.model_json_schema(by_alias=True, mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    click.echo(json.dumps(document, indent=2, sort_keys=True))

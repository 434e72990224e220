"""`vnet host check`: what this host can do for labs, guests, passthrough and SR-IOV."""

from __future__ import annotations

import json
import sys

import click

from vnet.cli.app import cli

_COLOUR = {"PASS": "green", "WARN": "yellow", "FAIL": "red", "N/A": "bright_black"}


@cli.group()
def host() -> None:
    """Inspect this host's readiness (virtualization, IOMMU, SR-IOV, OVS)."""


@host.command()
@click.option("--json", "as_json", is_flag=True, help="Print a list of {name, status, evidence, fix}.")
@click.option("--root", default="/", show_default=True, type=click.Path(file_okay=False, exists=True),
              help="Read sys, proc, dev and lib/modules under this directory (a snapshot); "
                   "`/` is the live host.")
def check(as_json: bool, root: str) -> None:
    """One line per capability: PASS, WARN, FAIL or N/A, the evidence read, and the fix.

    Exits 69 when something every lab needs (network namespaces, TUN) fails, else 0."""
    from vnet.host.check import run_checks  # noqa: PLC0415 (keep `vnet --help` quick)

    report = run_checks(root)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        width = max(len(r.name) for r in report.results)
        for result in report.results:
            status = click.style(f"{result.status.value:<4}", fg=_COLOUR[result.status.value])
            fix = f"  -> fix: {result.fix}" if result.fix else ""
            click.echo(f"{status}  {result.name:<{width}}  {result.evidence}{fix}")
    for failure in report.basic_failures:
        click.echo(f"error: {failure.name} is needed by every lab: {failure.evidence}", err=True)
    if report.exit_code:
        sys.exit(report.exit_code)

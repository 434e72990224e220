"""`vnet host check` (what this host can do for labs, guests, passthrough and SR-IOV) and
`vnet ovs` (the Open vSwitch daemons vnet manages)."""

from __future__ import annotations

import json
import sys

import click

from vnet.cli.app import cli
from vnet.cli.output import console, print_json
from vnet.host import netns

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


@cli.group()
def ovs() -> None:
    """Open vSwitch daemons that vnet manages (the system instance)."""


@ovs.command(name="start")
def ovs_start() -> None:
    """Start ovsdb-server and ovs-vswitchd unless the system OVSDB already answers."""
    from vnet.host import ovs_daemon  # noqa: PLC0415 (sockets, processes: not for `vnet --help`)

    netns.require_root()
    paths = ovs_daemon.OvsPaths.system()
    if ovs_daemon.ensure_running(paths):
        console.print(f"started Open vSwitch: {paths.socket}")
    else:
        console.print(f"Open vSwitch already answers on {paths.socket}")


@ovs.command(name="stop")
def ovs_stop() -> None:
    """Stop the OVS daemons vnet started (never others)."""
    from vnet.host import ovs_daemon  # noqa: PLC0415 (as in ovs_start)

    netns.require_root()
    stopped = ovs_daemon.stop(ovs_daemon.OvsPaths.system())
    console.print(f"stopped pids {', '.join(map(str, stopped))}" if stopped
                  else "no OVS daemons started by vnet are running")


@ovs.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def ovs_status(as_json: bool) -> None:
    """Whether the system OVSDB answers and which daemons vnet manages."""
    from vnet.host import ovs_daemon  # noqa: PLC0415 (as in ovs_start)

    state = ovs_daemon.status(ovs_daemon.OvsPaths.system())
    if as_json:
        print_json(state)
    else:
        for key, value in state.items():
            console.print(f"{key}: {value}")

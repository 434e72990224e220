"""`vnet plan|apply|verify|destroy|status|exec`: the commands that look at or change the host."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from vnet.cli.app import cli
from vnet.errors import EX_VERIFY_FAILED, CannotExecuteError, CommandNotFoundError, NotOnHostError
from vnet.host import netns, ovs_daemon
from vnet.topology import load

if TYPE_CHECKING:
    from vnet.resources import Change, Plan
    from vnet.verification.prove import VerifyReport


class _LazyApi:
    """vnet.api (drivers, ovsdbapp, networkx) is imported on first use: `vnet validate` stays quick."""

    def __getattr__(self, name: str) -> Any:
        module: ModuleType = importlib.import_module("vnet.api")
        return getattr(module, name)


api = _LazyApi()

# Not a terminal (CI logs, pipes): wide enough for verify's table instead of rich's 80 columns.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 130)
ovsdb_option = click.option("--ovsdb", envvar="VNET_OVSDB", default=None, metavar="REMOTE",
                            help="OVSDB to use, e.g. unix:/path/db.sock (default: the system socket).")
_STYLE = {"create": "green", "update": "yellow", "delete": "red"}


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _plan_table(plan: Plan) -> None:
    for note in plan.notes:
        console.print(f"note: {note}")
    if plan.empty:
        console.print(f"lab {plan.lab}: the host matches the topology (no changes)")
        return
    table = Table(title=f"plan for lab {plan.lab}", show_lines=False)
    for column in ("#", "action", "kind", "object", "why"):
        table.add_column(column)
    for k, change in enumerate(plan.changes):
        action = change.action.value
        table.add_row(str(k), f"[{_STYLE[action]}]{action}[/]", change.key[0], change.key[1], change.reason)
    console.print(table)
    counts = plan.counts()
    console.print(", ".join(f"{n} to {a}" for a, n in counts.items() if n) + f" in {len(plan.waves)} waves")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@ovsdb_option
def plan(file: str, as_json: bool, ovsdb: str | None) -> None:
    """Show what `apply` would change on this host (changes nothing)."""
    the_plan = api.plan(load(file), ovsdb)
    if as_json:
        _print_json(the_plan.to_json())
    else:
        _plan_table(the_plan)


def _progress(change: Change, error: str | None) -> None:
    if error is not None:
        console.print(f"[red]failed[/] {change.action} {change.resource.describe()}: {error}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--verify", "then_verify", is_flag=True, help="Verify after applying.")
@click.option("--wait", is_flag=True, help="Wait for another vnet holding the lab's lock.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@ovsdb_option
def apply(file: str, then_verify: bool, wait: bool, as_json: bool, ovsdb: str | None) -> None:
    """Make the host match FILE; a failure rolls back this apply's changes."""
    lab = load(file)
    report = api.apply(lab, wait=wait, ovsdb=ovsdb, progress=None if as_json else _progress)
    result: dict[str, Any] = {"lab": lab.name, "seconds": round(report.seconds, 3),
                              "notices": list(report.notices), **report.plan.to_json()}
    if not as_json:
        for notice in report.notices:
            console.print(f"note: {notice}")
        done = ", ".join(f"{n} {a}d" for a, n in report.plan.counts().items() if n) or "no changes"
        console.print(f"lab {lab.name}: {done} in {report.seconds:.2f} s")
    if then_verify:
        verification = api.verify(lab, ovsdb=ovsdb)
        result["verify"] = verification.to_json()
        if not as_json:
            _verify_table(verification)
    if as_json:
        _print_json(result)
    if then_verify and not result["verify"]["ok"]:
        sys.exit(EX_VERIFY_FAILED)


TABLE_ROWS = 60  # above this many rows, verify lists the failing ones (and --all every one)


def _verify_table(report: VerifyReport, every_row: bool = False) -> None:
    if report.drift:
        console.print(f"[red]lab {report.lab}: the host differs from the topology[/]")
        for change in report.drift:
            console.print(f"  {change.action} {change.key[0]} {change.key[1]}: {change.reason}")
        console.print("  hint: run `vnet apply` to repair it")
    shown = [o for o in report.outcomes if every_row or len(report.outcomes) <= TABLE_ROWS or not o.ok]
    if shown:
        table = Table(title=f"what verify proved in lab {report.lab}")
        for column in ("from", "to", "family", "probe", "address", "expected", "observed", ""):
            table.add_column(column, no_wrap=True)
        for o in shown:
            mark = "[green]ok[/]" if o.ok else "[red]FAIL[/]"
            table.add_row(o.probe.source, o.probe.target, o.probe.family,
                          o.probe.what + (" (control)" if o.probe.control else ""), str(o.probe.address.ip),
                          o.expected, o.observed, mark)
        console.print(table)
    failing = [o for o in report.outcomes if not o.ok]
    for o in failing:
        p = o.probe
        console.print(f"[red]FAIL[/] {p.source} -> {p.target} {p.what} {p.address.ip}: "
                      f"expected {o.expected}, observed {o.observed}\n    hint: {o.hint}")
    failed = len(failing)
    by_probe: dict[str, int] = {}
    for o in report.outcomes:
        what = o.probe.what.split("/")[0].split(" ")[0]
        by_probe[what] = by_probe.get(what, 0) + 1
    kinds = ", ".join(f"{n} {what}" for what, n in sorted(by_probe.items()))
    console.print(f"{len(report.outcomes) - failed}/{len(report.outcomes)} rows hold"
                  + (f" ({kinds})" if kinds else "")
                  + ("" if len(shown) == len(report.outcomes) else "; --all lists every row"))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--timeout", default=1.5, show_default=True, type=click.FloatRange(0.1, 60),
              help="Seconds each probe waits for its answer (VMs included).")
@click.option("--all", "every_row", is_flag=True, help="List every row, not only the failing ones.")
@ovsdb_option
def verify(file: str, as_json: bool, timeout: float, every_row: bool, ovsdb: str | None) -> None:
    """Prove FILE on this host: state matches, expected pairs reach, isolated pairs do not."""
    report = api.verify(load(file), timeout, ovsdb)
    if as_json:
        _print_json(report.to_json())
    else:
        _verify_table(report, every_row)
    if not report.ok:
        sys.exit(EX_VERIFY_FAILED)


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--lab", "lab_name", help="Destroy this lab (no topology file needed).")
@click.option("--all", "everything", is_flag=True, help="Destroy every vnet lab on this host.")
@click.option("--wait", is_flag=True, help="Wait for another vnet holding a lab's lock.")
@ovsdb_option
def destroy(file: str | None, lab_name: str | None, everything: bool, wait: bool, ovsdb: str | None) -> None:
    """Remove everything a lab owns (FILE, --lab NAME or --all); nothing else is touched."""
    if (file is not None) + (lab_name is not None) + everything != 1:
        raise click.UsageError("give exactly one of FILE, --lab NAME or --all")
    # `--lab ''` is a (bad) name too: it must say so (exit 65), not fall through to loading FILE
    names = api.labs(ovsdb) if everything else [lab_name if lab_name is not None else load(str(file)).name]
    for name in names:
        report = api.destroy(name, wait=wait, ovsdb=ovsdb)
        console.print(f"lab {name}: removed {report.namespaces} namespaces, {report.devices} host "
                      f"devices and {report.ovs_bridges} OVS bridges in {report.seconds:.2f} s")


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--lab", "lab_name", help="Only this lab.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@ovsdb_option
def status(file: str | None, lab_name: str | None, as_json: bool, ovsdb: str | None) -> None:
    """Labs on this host and their objects; with FILE, also the drift from it."""
    rows = api.status(load(file) if file else None, lab_name, ovsdb)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        console.print("no vnet labs on this host")
        return
    table = Table(title="vnet labs on this host")
    for column in ("lab", "objects", "drift"):
        table.add_column(column)
    for row in rows:
        # `--lab NAME` of a lab not applied is an answer, not an error: say it plainly
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(row["objects"].items()))
        counts = counts or "nothing on this host"
        drift = "-" if row["drift"] is None else (f"{len(row['drift'])} changes" if row["drift"] else "none")
        table.add_row(row["lab"], counts, drift)
    console.print(table)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("source")
@click.argument("target")
@click.option("--proto", type=click.Choice(["icmp", "tcp", "udp"]), default="icmp", show_default=True,
              help="What the traced packet is.")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="TCP/UDP destination port.")
@click.option("--json", "as_json", is_flag=True, help="Print the path as JSON.")
@ovsdb_option
def trace(file: str, source: str, target: str, proto: str, port: int | None, as_json: bool,
          ovsdb: str | None) -> None:
    """Show the path from SOURCE to TARGET (node or node:iface), through routers, and where it drops."""
    result = api.trace(load(file), source, target, ovsdb, proto, port or (7 if proto != "icmp" else None))
    if as_json:
        _print_json(result.to_json())
    else:
        _trace_text(result)
    if not result.delivered:
        sys.exit(EX_VERIFY_FAILED)


def _trace_text(result: Any) -> None:
    console.print(f"{result.source} -> {result.target} ({result.address}, {result.proto})")
    if result.dropped:
        console.print(f"  [red]dropped[/]: {result.dropped}")
    for leg in result.legs:
        console.print(f"  {leg.sender} -> {leg.receiver}" + (f" (router {leg.via})" if leg.via else ""))
        if leg.dropped:
            console.print(f"    [red]dropped[/]: {leg.dropped}")
        for hop in leg.hops:
            console.print(f"    {hop.description}")
            for check in hop.checks:
                console.print(f"        {check}")
            if hop.dropped:
                console.print(f"        [red]dropped[/]: {hop.dropped}")
    console.print("delivered" if result.delivered else "[red]not delivered[/]")


@cli.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(file: str, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside NODE of FILE (e.g. vnet exec lab.yaml h1 -- ip addr).

    In a namespace node the command runs on this host inside the namespace; in a VM it runs
    in the guest through its agent (output is returned when it ends)."""
    lab = load(file)
    if api.node_kind(lab, node) == "vm":  # an unknown node: InputError, exit 65
        result = api.guest_exec(lab, node, list(command))
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        sys.exit(result.returncode)
    namespace = api.node_namespace(lab, node)
    netns.require_root()
    if not netns.exists(namespace):
        raise NotOnHostError(f"node {node} of lab {lab.name} is not on this host (no namespace {namespace})",
                             f"run `vnet apply {file}` first")
    try:
        done = subprocess.run(list(command), preexec_fn=lambda: netns.enter_for_exec(namespace),
                              check=False)
    except FileNotFoundError:
        raise CommandNotFoundError(f"command not found in node {node}: {command[0]}",
                                   "give a program on this host's PATH (a namespace node shares the "
                                   "host's file system), or its full path") from None
    except OSError as exc:  # not executable, a directory, not a program: a shell says 126 too
        raise CannotExecuteError(f"cannot run {command[0]} in node {node}: {exc.strerror}",
                                 "check that it is an executable file") from None
    except subprocess.SubprocessError:
        # preexec_fn failed: the namespace went away between the check and the fork
        raise NotOnHostError(f"cannot enter namespace {namespace} of node {node}",
                             f"it was removed meanwhile; run `vnet apply {file}`") from None
    sys.exit(done.returncode)


@cli.group()
def ovs() -> None:
    """Open vSwitch daemons that vnet manages (the system instance)."""


@ovs.command(name="start")
def ovs_start() -> None:
    """Start ovsdb-server and ovs-vswitchd unless the system OVSDB already answers."""
    netns.require_root()
    paths = ovs_daemon.OvsPaths.system()
    if ovs_daemon.ensure_running(paths):
        console.print(f"started Open vSwitch: {paths.socket}")
    else:
        console.print(f"Open vSwitch already answers on {paths.socket}")


@ovs.command(name="stop")
def ovs_stop() -> None:
    """Stop the OVS daemons vnet started (never others)."""
    netns.require_root()
    stopped = ovs_daemon.stop(ovs_daemon.OvsPaths.system())
    console.print(f"stopped pids {', '.join(map(str, stopped))}" if stopped
                  else "no OVS daemons started by vnet are running")


@ovs.command(name="status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def ovs_status(as_json: bool) -> None:
    """Whether the system OVSDB answers and which daemons vnet manages."""
    state = ovs_daemon.status(ovs_daemon.OvsPaths.system())
    if as_json:
        _print_json(state)
    else:
        for key, value in state.items():
            console.print(f"{key}: {value}")


@cli.command(name="attach-info")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("node")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--queues", type=click.IntRange(1, 256), default=None,
              help="Queues of a multi-queue TAP (default 4; match the guest's vCPUs).")
def attach_info(file: str, node: str, as_json: bool, queues: int | None) -> None:
    """How to attach a guest you start yourself to tap NODE: TAP names, MACs, QEMU and libvirt."""
    from vnet import attach_info as info  # noqa: PLC0415 (compile: only for this command)

    result = info.attach_info(load(file), node, queues=queues)
    if as_json:
        _print_json(result.to_json())
    else:
        click.echo(info.format_text(result))

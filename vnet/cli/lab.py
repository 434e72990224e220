"""`vnet plan|apply|verify|destroy|status`: the commands that look at or change a lab on the host."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from vnet.cli.app import cli
from vnet.cli.output import Table, api, console, literal, ovsdb_option, print_json
from vnet.errors import EX_VERIFY_FAILED, DetailedPlanError, VnetError
from vnet.topology import load

if TYPE_CHECKING:
    from rich.table import Table as RichTable

    from vnet.resources import Plan
    from vnet.verification.prove import VerifyReport

_STYLE = {"create": "green", "update": "yellow", "delete": "red"}
PLAN_HAS_CHANGES = 2  # `plan --detailed-exitcode`


def _plan_table(plan: Plan) -> None:
    for note in plan.notes:
        console.print(f"note: {note}")
    if plan.empty:
        console.print(f"lab {plan.lab}: the host matches the topology (no changes)")
        return
    table = Table(title=f"plan for lab {plan.lab}", show_lines=False)
    for column in ("#", "action", "kind", "object", "from", "why"):
        table.add_column(column)
    for k, change in enumerate(plan.changes):
        action = change.action.value
        table.add_row(str(k), f"[{_STYLE[action]}]{action}[/]", change.key[0], literal(change.key[1]),
                      change.origin or "-", literal(change.explained()))
    console.print(table)
    counts = plan.counts()
    console.print(", ".join(f"{n} to {a}" for a, n in counts.items() if n) + f" in {len(plan.waves)} waves")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when nothing would change, 2 when something would, 1 on an error.")
@ovsdb_option
def plan(file: str, as_json: bool, detailed_exitcode: bool, ovsdb: str | None) -> None:
    """Show what `apply` would change on this host (changes nothing)."""
    try:
        the_plan = api.plan(load(file), ovsdb)
    except VnetError as exc:
        if not detailed_exitcode:
            raise
        # like terraform's: a CI step tells "error" from "changes" without parsing output
        raise DetailedPlanError(exc) from exc
    if as_json:
        print_json(the_plan.to_json())
    else:
        _plan_table(the_plan)
    if detailed_exitcode and not the_plan.empty:
        sys.exit(PLAN_HAS_CHANGES)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--verify", "then_verify", is_flag=True, help="Verify after applying.")
@click.option("--wait", is_flag=True, help="Wait for another vnet holding the lab's lock.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@ovsdb_option
def apply(file: str, then_verify: bool, wait: bool, as_json: bool, ovsdb: str | None) -> None:
    """Make the host match FILE; a failure rolls back this apply's changes, and so does Ctrl-C
    (pressed again, the rollback stops and what is left is listed)."""
    from vnet.cli import progress  # noqa: PLC0415 (rich and the pipeline only when applying)
    from vnet.interrupt import Interrupt  # noqa: PLC0415
    from vnet.pipeline.execute import ApplyInterrupted, Rollback  # noqa: PLC0415

    lab = load(file)
    interrupt = Interrupt()
    try:
        with progress.interruptible(interrupt), progress.shown() as shown:
            report = api.apply(lab, wait=wait, ovsdb=ovsdb, progress=shown, interrupt=interrupt)
    except KeyboardInterrupt:  # before the first change (see vnet/cli/progress.py)
        raise ApplyInterrupted(lab.name, Rollback(), file=file) from None
    result: dict[str, Any] = {"lab": lab.name, "seconds": round(report.seconds, 3),
                              "notices": list(report.notices), **report.plan.to_json()}
    if not as_json:
        for notice in report.notices:
            console.print(f"note: {notice}")
        done = ", ".join(f"{n} {a}d" for a, n in report.plan.counts().items() if n) or "no changes"
        console.print(f"lab {lab.name}: {done} in {report.seconds:.2f} s")
    if then_verify:
        with progress.shown() as shown:
            verification = api.verify(lab, ovsdb=ovsdb, progress=shown)
        result["verify"] = verification.to_json()
        if not as_json:
            _verify_table(verification)
    if as_json:
        print_json(result)
    if then_verify and not result["verify"]["ok"]:
        sys.exit(EX_VERIFY_FAILED)


TABLE_ROWS = 60  # above this many rows, verify lists the failing ones (and --all every one)


def _verify_table(report: VerifyReport, every_row: bool = False) -> None:
    if report.drift:
        console.print(f"[red]lab {report.lab}: the host differs from the topology[/]")
        for change in report.drift:
            origin = f" ({change.origin})" if change.origin else ""
            console.print(literal(f"  {change.action} {change.key[0]} {change.key[1]}{origin}: "
                                  f"{change.explained()}"))
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
    from vnet.cli import progress  # noqa: PLC0415 (rich only when drawing)

    lab = load(file)
    with progress.shown() as shown:
        report = api.verify(lab, timeout, ovsdb, progress=shown)
    if as_json:
        print_json(report.to_json())
    else:
        _verify_table(report, every_row)
    if not report.ok:
        sys.exit(EX_VERIFY_FAILED)


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--lab", "lab_name", help="Destroy this lab (no topology file needed).")
@click.option("--all", "everything", is_flag=True, help="Destroy every vnet lab on this host.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before destroying every lab (--all).")
@click.option("--force", is_flag=True,
              help="Destroy even while processes vnet did not start (guests) hold the lab's TAPs.")
@click.option("--wait", is_flag=True, help="Wait for another vnet holding a lab's lock.")
@click.option("--json", "as_json", is_flag=True, help="Print what was removed as JSON.")
@ovsdb_option
def destroy(file: str | None, lab_name: str | None, everything: bool, yes: bool, force: bool, wait: bool,
            as_json: bool, ovsdb: str | None) -> None:
    """Remove everything a lab owns (FILE, --lab NAME or --all); nothing else is touched."""
    if (file is not None) + (lab_name is not None) + everything != 1:
        raise click.UsageError("give exactly one of FILE, --lab NAME or --all")
    # `--lab ''` is a (bad) name too: it must say so (exit 65), not fall through to loading FILE
    names = api.labs(ovsdb) if everything else [lab_name if lab_name is not None else load(str(file)).name]
    asks = everything and names and not yes and sys.stdin.isatty()  # a shared host: others' labs too
    if asks and not click.confirm(f"destroy {len(names)} labs ({', '.join(names)})?", err=True):
        console.print("nothing destroyed")
        sys.exit(EX_VERIFY_FAILED)
    from vnet.cli import progress  # noqa: PLC0415 (rich only when there is work)

    reports = []
    for name in names:
        with progress.shown() as shown:  # a lock wait (--wait) is shown while it lasts
            report = api.destroy(name, wait=wait, ovsdb=ovsdb, force=force, progress=shown)
        reports.append({"lab": name, "seconds": round(report.seconds, 3), "removed": report.removed})
        if as_json:
            continue
        if not report.removed:  # destroy is idempotent (exit 0), but a typo must be visible
            console.print(f"lab {name}: nothing of it is on this host; nothing removed")
            continue
        console.print(f"lab {name}: removed {report.namespaces} namespaces, {report.devices} host "
                      f"devices and {report.ovs_bridges} OVS bridges in {report.seconds:.2f} s")
    if as_json:
        print_json(reports)


def _facts_text(facts: list[tuple[str, list[str]]]) -> str:
    return literal("; ".join(f"{name} {', '.join(values)}" for name, values in facts))


def _node_table(row: dict[str, Any]) -> RichTable:
    table = Table(title=f"lab {row['lab']}: nodes on this host")
    for column in ("node", "kind", "interface", "what the host has"):
        table.add_column(column)
    for node in row["nodes"]:
        table.add_row(node["name"], node["kind"], "-", _facts_text(list(node["facts"].items())) or "-")
        for iface in node["interfaces"]:
            table.add_row("", "", iface["name"], _facts_text(list(iface["facts"].items())) or "-")
    return table


@cli.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--lab", "lab_name", help="Only this lab.")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@ovsdb_option
def status(file: str | None, lab_name: str | None, as_json: bool, ovsdb: str | None) -> None:
    """Labs on this host and their objects; with FILE or --lab, each node (devices, MACs,
    addresses, OVS ports, guests) and, with FILE, the drift from it."""
    rows = api.status(load(file) if file else None, lab_name, ovsdb)
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("no vnet labs on this host")
        return
    table = Table(title="vnet labs on this host")
    for column in ("lab", "nodes", "objects", "drift"):
        table.add_column(column)
    for row in rows:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(row["objects"].items()))
        counts = counts or "nothing on this host"
        drift = "-" if row["drift"] is None else (f"{len(row['drift'])} changes" if row["drift"] else "none")
        table.add_row(row["lab"], str(len(row["nodes"])), counts, drift)
    console.print(table)
    if file or lab_name:
        for row in rows:
            console.print(_node_table(row))

"""`vnet trace|exec|console|logs|attach-info`: the commands about one node (or a pair) of a lab."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any, NoReturn

import click

from vnet.cli.app import cli
from vnet.cli.output import api, console, ovsdb_option, print_json
from vnet.errors import EX_VERIFY_FAILED, CannotExecuteError, CommandNotFoundError, InputError, NotOnHostError
from vnet.host import netns
from vnet.host.signals import handling
from vnet.topology import load


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
        print_json(result.to_json())
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


class _ExecCommand(click.Command):
    """exec's own options stand before the command: after FILE and NODE everything is the
    command's, `--` or not (`vnet exec lab.yaml h1 ls -i` passes `-i` to ls)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        positionals, value_next = 0, False
        for k, arg in enumerate(args):
            if arg == "--":
                break
            if value_next or (arg.startswith("-") and arg != "-"):
                value_next = arg == "--timeout"  # the one option of exec's that takes a value
                continue
            positionals += 1
            if positionals == 3:
                args = [*args[:k], "--", *args[k:]]
                break
        return super().parse_args(ctx, args)


@cli.command(name="exec", cls=_ExecCommand)
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-i", "--interactive", is_flag=True,
              help="In a VM: send standard input also when it is a terminal (read up to Ctrl-D first).")
@click.option("-t", "--tty", "terminal", is_flag=True,
              help="Run the command on this terminal (namespace nodes; standard input must be one). "
                   "A VM's agent has none: `vnet console` is the VM's terminal.")
@click.option("--timeout", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="In a VM: seconds the command may run; the guest's agent then kills it.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"node", "returncode", "stdout", "stderr"}; the exit status stays the command\'s.')
def exec_(file: str, node: str, command: tuple[str, ...], interactive: bool, terminal: bool,
          timeout: float, as_json: bool) -> None:
    """Run COMMAND inside NODE of FILE (e.g. vnet exec lab.yaml h1 -- ip addr).

    In a namespace node the command runs on this host inside the namespace, with vnet's
    standard input, output and terminal, as under `ip netns exec`. In a VM it runs in the guest
    through its agent, which takes standard input whole before the command starts (at most
    8 MiB) and returns the output when it ends: vnet sends standard input when it is not a
    terminal, or with -i; from a terminal without -i the command gets none (exec does not wait
    for keys). `< /dev/null` gives a command no input. Exits with the command's status (128+N
    when signal N ended it)."""
    if terminal and as_json:
        raise click.UsageError("-t and --json exclude each other: --json captures the output")
    lab = load(file)
    if api.node_kind(lab, node) == "vm":  # an unknown node: InputError, exit 65
        if terminal:
            raise InputError(f"a VM's guest agent cannot give a command a terminal (-t in {node})",
                             f"`vnet console {file} {node}` attaches this terminal to its serial "
                             "console; without -t, exec passes standard input")
        api.running_vm(lab, node)  # before reading the input: a mistake does not wait for it
        stdin = _read_input() if interactive or not _isatty(0) else None
        result = api.guest_exec(lab, node, list(command), timeout=timeout, stdin=stdin)
        _exec_result(node, _exit_status(result.returncode), result.out, result.err, as_json)
    namespace = api.node_namespace(lab, node)
    netns.require_root()
    if not netns.exists(namespace):
        raise NotOnHostError(f"node {node} of lab {lab.name} is not on this host (no namespace {namespace})",
                             f"run `vnet apply {file}` first")
    if terminal and not _isatty(0):
        raise click.UsageError("-t needs a terminal, and standard input is not one")
    capture = subprocess.PIPE if as_json else None
    try:
        with _interrupts_to_the_command():
            done = subprocess.run(list(command), preexec_fn=lambda: netns.enter_for_exec(namespace),
                                  stdout=capture, stderr=capture, check=False)
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
    _exec_result(node, _exit_status(done.returncode), done.stdout or b"", done.stderr or b"", as_json)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _read_input() -> bytes | None:
    """Standard input to its end, for a VM's agent; one byte more than the agent takes is enough
    to refuse it (api.guest_exec), however long it is."""
    from vnet.vm.agent import MAX_INPUT  # noqa: PLC0415 (only for a VM's exec)

    if sys.stdin is None:  # fd 0 closed: no input
        return None
    if _isatty(0):
        click.echo("reading standard input up to Ctrl-D: the agent runs the command with all of it",
                   err=True)
    try:
        return sys.stdin.buffer.read(MAX_INPUT + 1)
    except OSError as exc:
        raise InputError(f"cannot read standard input: {exc.strerror}",
                         "give the command readable input, or none (< /dev/null)") from None


@contextlib.contextmanager
def _interrupts_to_the_command() -> Iterator[None]:
    """Ctrl-C and Ctrl-\\ at the terminal are the command's (they reach its process group, vnet's):
    vnet waits for its status, as a shell does, instead of ending and leaving it behind. The
    handlers are Python's, not SIG_IGN, so exec resets them to the default in the command."""
    def wait_for_the_command(_number: int, _frame: FrameType | None) -> None:
        pass

    with handling(wait_for_the_command, signal.SIGINT, signal.SIGQUIT):
        yield


def _exit_status(returncode: int) -> int:
    """A shell's status: -N (subprocess, qemu-guest-agent: signal N ended it) is 128+N."""
    return 128 - returncode if returncode < 0 else returncode


def _text(output: bytes | None) -> str:
    return (output or b"").decode("utf-8", "replace")


def _exec_result(node: str, status: int, stdout: bytes, stderr: bytes, as_json: bool) -> NoReturn:
    """The command's output as it gave it (bytes: a binary's output passes whole), or as JSON
    text (invalid UTF-8 replaced)."""
    if as_json:
        print_json({"node": node, "returncode": status, "stdout": _text(stdout), "stderr": _text(stderr)})
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(stdout)
        sys.stdout.buffer.flush()
        sys.stderr.buffer.write(stderr)
        sys.stderr.buffer.flush()
    sys.exit(status)


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
        print_json(result.to_json())
    else:
        click.echo(info.format_text(result))


@cli.command(name="console")
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("node")
@click.option("--linger", type=click.FloatRange(min=0), default=1.0, show_default=True, metavar="S",
              help="Standard input not a terminal: seconds to keep printing output after its end.")
def console_(file: str, node: str, linger: float) -> None:
    """Attach this terminal to the serial console of VM NODE of FILE; Ctrl-] detaches.

    Meanwhile the terminal is in raw mode: every key, Ctrl-C too, goes to the guest. The tiny
    image has a root shell there (press Enter for its prompt); a disk image has what its
    system runs on ttyS0. Standard input that is not a terminal is sent as it is (no key is
    special), and output is printed until S seconds after the end of the input, so
    `echo CMD | vnet console FILE NODE` works in a script. QEMU serves one console client at
    a time: while another is attached, exit 75. What the guest writes is also in `vnet logs`."""
    from vnet.vm import console as serial  # noqa: PLC0415 (termios, selectors: only for this command)

    lab = load(file)
    paths = api.serial_console(lab, node)  # 65: not a VM of the file; 69: not running here
    terminal = _isatty(0)
    with serial.connect(paths.console, node) as sock:
        if terminal:
            click.echo(f"Connected to the serial console of {node} (lab {lab.name}); "
                       f"detach with {serial.DETACH_KEY}.", err=True)
        ended = serial.attach(sock, 0, 1, terminal=terminal, linger=linger)
    if terminal or ended is serial.Ended.CLOSED:
        click.echo(f"\r\n{ended.value}: console of {node}", err=True)


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("node")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing what the guest writes, until the VM stops (or Ctrl-C).")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=None, metavar="N",
              help="Only the last N lines (then, with -f, what follows).")
def logs(file: str, node: str, follow: bool, lines: int | None) -> None:
    """Print the serial log of VM NODE of FILE: everything the guest wrote to its serial
    console since it started (kernel messages, the tiny image's `vnet-tiny:` lines, console
    sessions), as written. A VM that is not running but left its log (its QEMU ended or
    crashed) still has it until the next apply or destroy."""
    from vnet.mechanisms.qemu import process as qemu  # noqa: PLC0415 (only for this command)
    from vnet.vm import console as serial  # noqa: PLC0415 (as qemu)

    lab = load(file)
    paths, vm = api.serial_log(lab, node)  # 65: not a VM of the file; 69: no log here
    if vm is None:
        click.echo(f"note: VM {node} of lab {lab.name} is not running: this is the log it left", err=True)
    try:
        text, end = serial.last_lines(paths.serial, lines)
        serial.write_all(1, text)
        if follow and vm is not None:
            serial.follow(paths.serial, end, 1, lambda: qemu.still_running(vm))
    except FileNotFoundError:  # removed after the check: destroyed, or restarted by an apply
        raise NotOnHostError(f"the serial log of VM {node} was removed meanwhile",
                             "the VM was destroyed or restarted; run `vnet logs` again") from None
    except BrokenPipeError:  # `vnet logs … | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    except KeyboardInterrupt:  # how -f ends before the VM does: not an error
        if not follow:
            raise

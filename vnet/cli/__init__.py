"""The `vnet` command: the only package that prints or exits (exit codes: README, "Exit codes").

app.py holds the command group and the file-only commands; lab.py the lab verbs; node.py the
commands about one node; host.py the host's services and checks; output.py what they share.
Each registers its commands on the group when imported.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import click

from vnet.cli import capture, host, lab, node  # noqa: F401  (they register their commands)
from vnet.cli.app import cli
from vnet.errors import EX_SOFTWARE, VnetError

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI and turn vnet errors into messages and exit codes."""
    try:
        cli.main(args=argv, prog_name="vnet", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        # `plan --detailed-exitcode` keeps 2 for "changes": a usage error there is an error (1)
        sys.exit(1 if "--detailed-exitcode" in (sys.argv[1:] if argv is None else argv) else exc.exit_code)
    except VnetError as exc:
        click.echo(exc.format(), err=True)
        sys.exit(exc.exit_code)
    except Exception:  # a bug: say so, keep the traceback for the report
        if os.environ.get("VNET_DEBUG"):
            traceback.print_exc()
        else:
            click.echo(f"internal error: {traceback.format_exc(limit=-1).strip().splitlines()[-1]}"
                       "\n    hint: this is a bug in vnet; rerun with VNET_DEBUG=1 and report the "
                       "traceback", err=True)
        sys.exit(EX_SOFTWARE)
    sys.exit(0)

"""What every command of the CLI shares: the console, JSON output, the --ovsdb option, vnet.api."""

from __future__ import annotations

import importlib
import json
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table as RichTable


class _LazyApi:
    """vnet.api (drivers, ovsdbapp, networkx) is imported on first use: `vnet validate` stays quick."""

    def __getattr__(self, name: str) -> Any:
        module: ModuleType = importlib.import_module("vnet.api")
        return getattr(module, name)


api = _LazyApi()


class _LazyConsole:
    """rich's Console, made on first use: rich's imports (~40 ms) are not for `--version`, `--help`,
    JSON output or a line of plain text (a sixth of a no-op `vnet plan`)."""

    def __init__(self) -> None:
        self._console: Console | None = None

    def rich(self) -> Console:
        """The Console itself (for what takes one, e.g. a live display)."""
        if self._console is None:
            from rich.console import Console  # noqa: PLC0415 (see the class)

            # Not a terminal (CI logs, pipes): wide enough for verify's table instead of rich's 80 columns.
            # emoji=False: rich would draw a MAC's `:ab:` as an emoji.
            self._console = Console(highlight=False, soft_wrap=True, emoji=False,
                                    width=None if sys.stdout.isatty() else 130)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        # Until rich is in use (a table, a live display: it must then write everything), plain
        # text goes out as rich would write it.
        text = objects[0] if len(objects) == 1 and not options else None
        if self._console is None and isinstance(text, str) and _plain(text):
            click.echo(text)
        else:
            self.rich().print(*objects, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich(), name)


console = _LazyConsole()
def literal(text: str) -> str:
    """`text` (a name, a value the host or the file has) as rich prints it: a `[` is no markup."""
    return text.replace("[", r"\[")


def _plain(text: str) -> bool:
    """Text that rich prints as it is: no markup, no tab or control character."""
    return "[" not in text and text.replace("\n", "").isprintable()


def Table(*args: Any, **kwargs: Any) -> RichTable:  # named as the class it makes: call sites read the same
    """rich's Table, imported when a command draws one (as the console)."""
    from rich.table import Table  # noqa: PLC0415 (see _LazyConsole)

    return Table(*args, **kwargs)


ovsdb_option = click.option("--ovsdb", envvar="VNET_OVSDB", default=None, metavar="REMOTE",
                            help="OVSDB to use, e.g. unix:/path/db.sock (default: the system socket).")
_STYLE = {"create": "green", "update": "yellow", "delete": "red"}


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))



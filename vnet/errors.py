"""vnet's own error tree and diagnostics.

Every failure that reaches a user is a VnetError subclass carrying the process exit code that
`cli.py` uses (sysexits.h values). Problems in a topology file are Diagnostics: all of them are
collected and raised together in one TopologyError.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

EX_OK = 0
EX_VERIFY_FAILED = 1
EX_USAGE = 2  # click's code for a wrong command line, kept for vnet's own usage errors
EX_DATAERR = 65
EX_SOFTWARE = 70
EX_UNAVAILABLE = 69
EX_TEMPFAIL = 75
EX_NOPERM = 77
# `vnet exec`'s own failures to start the command, as POSIX shells (and the tiny guest's agent,
# which runs the command with `sh -c`) report them: the same mistake, the same code in any node.
EX_CANNOT_EXECUTE = 126
EX_COMMAND_NOT_FOUND = 127
EX_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command Ctrl-C ended


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in a topology file, located by line/column and attribute path."""

    file: str
    line: int  # 1-based; 0 when the problem has no position (e.g. an unreadable file)
    column: int  # 1-based
    code: str
    message: str
    attr: str = ""  # attribute path such as "links[3].vlan"; empty for the whole document
    hint: str = ""
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def format(self) -> str:
        """`FILE:LINE:COL: error[code]: attr: message` followed by an indented hint line."""
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        what = f"{self.attr}: {self.message}" if self.attr else self.message
        text = f"{where}: {self.severity.value}[{self.code}]: {what}"
        return f"{text}\n    hint: {self.hint}" if self.hint else text

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity.value,
            "code": self.code,
            "attr": self.attr,
            "message": self.message,
            "hint": self.hint,
        }


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Stable order for output and golden files: by position, then code, then text."""
    return sorted(set(diagnostics), key=lambda d: (d.file, d.line, d.column, d.code, d.attr, d.message))


class VnetError(Exception):
    """Base of every error vnet reports; `exit_code` is what the CLI exits with."""

    exit_code = EX_SOFTWARE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        return f"error: {self.message}" + (f"\n    hint: {self.hint}" if self.hint else "")


class TopologyError(VnetError):
    """The topology file is invalid; nothing on the host was changed."""

    exit_code = EX_DATAERR

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sort_diagnostics(diagnostics)
        errors = [d for d in self.diagnostics if d.is_error]
        super().__init__(f"{len(errors)} error(s) in topology")

    def format(self) -> str:
        return "\n".join(d.format() for d in self.diagnostics)


class InputError(VnetError):
    """The command's arguments do not fit the topology: a node or interface the file does not
    have, a node of the wrong kind, a pair with nothing to trace. Like a TopologyError it is a
    mistake to fix in the file or on the command line, whatever state the host is in."""

    exit_code = EX_DATAERR


class UsageError(VnetError):
    """The command line asks for something that cannot be done as given: options that do not fit
    together or with the output (a PNG to a terminal, an output file of an unknown type)."""

    exit_code = EX_USAGE


class UnavailableError(VnetError):
    """A service, program or kernel feature the lab needs is missing (install or enable it)."""

    exit_code = EX_UNAVAILABLE


class NotOnHostError(UnavailableError):
    """The file is right but the host lacks what the command works on: the lab is not applied,
    a node's namespace is gone, a VM is not running (`vnet apply` makes it so)."""


class CommandNotFoundError(VnetError):
    """`vnet exec`: the command does not exist in the node (exit 127, as a shell says it)."""

    exit_code = EX_COMMAND_NOT_FOUND


class CannotExecuteError(VnetError):
    """`vnet exec`: the command exists but cannot be run (exit 126, as a shell says it)."""

    exit_code = EX_CANNOT_EXECUTE


class LockedError(VnetError):
    """Another vnet process holds the lab's lock."""

    exit_code = EX_TEMPFAIL


class DetailedPlanError(VnetError):
    """`plan --detailed-exitcode`: any error exits 1 (2 means "changes"), with its own message."""

    exit_code = EX_VERIFY_FAILED

    def __init__(self, cause: VnetError) -> None:
        super().__init__(cause.message, cause.hint)
        self.cause = cause

    def format(self) -> str:
        return self.cause.format()


class NotPermittedError(VnetError):
    """The operation needs privileges this process lacks (usually: run as root)."""

    exit_code = EX_NOPERM

"""What the four commands (esl-train, esl-export, esl-run, esl-energy) share on the command
line: a parser whose errors are one line, the same flag for the same thing, and one way
to turn an exception into ``prog: error: ...`` and an exit status.

Exit status: 0 done, 2 bad input (the command line, a file, a platform table, data),
1 a failure that is not the input's fault (e.g. a simulator process died), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn


class UsageError(Exception):
    """A bad command line; reported as one line, exit status 2."""


class LineParser(argparse.ArgumentParser):
    """argparse whose errors are exceptions, so the command reports them on one line
    (no usage dump) and returns its exit status instead of leaving the interpreter."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def one_line(exc: object) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars (default: when stderr is a terminal)")


def show_progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def add_source(p: argparse.ArgumentParser, what: str) -> None:
    """``--source``: the model file (or NIR file) an export or IR was made from."""
    p.add_argument("--source", default=None, metavar="MODEL", help=what)


def run_command(prog: str, body: Callable[[], int], errors: tuple[type[BaseException], ...] = (), *,
                failures: tuple[type[BaseException], ...] = (),
                interrupted: str = "interrupted") -> int:
    """Run ``body``; input errors (``errors`` and UsageError) print one line and give 2,
    ``failures`` one line and 1, Ctrl-C ``interrupted`` and 130."""
    bad_input: tuple[type[BaseException], ...] = (UsageError, *errors)
    try:
        return body()
    except bad_input as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except failures as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return 130

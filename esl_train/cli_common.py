"""What the four commands (esl-train, esl-export, esl-run, esl-energy) share on the command
line: a parser whose errors are one line, the same flag for the same thing, and one way
to turn an exception into ``prog: error: ...`` and an exit status.

Exit status: 0 done, 2 bad input (the command line, a file, a platform table, data),
1 a failure that is not the input's fault (e.g. a simulator process died), 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import signal
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


Errors = Callable[[], tuple[type[BaseException], ...]]


def _no_errors() -> tuple[type[BaseException], ...]:
    return ()


def run_command(prog: str, body: Callable[[], int], errors: Errors = _no_errors, *,
                failures: Errors = _no_errors, interrupted: str = "interrupted") -> int:
    """Run ``body``; input errors (``errors()`` and UsageError) print one line and give 2,
    ``failures()`` one line and 1, Ctrl-C ``interrupted`` and 130. The error classes are
    asked for only when something was raised, so a command imports its heavy modules
    inside ``body``, where a Ctrl-C is caught too."""
    try:
        return body()
    except KeyboardInterrupt:
        return _interrupted(prog, interrupted)
    except BaseException as exc:
        try:
            bad_input: tuple[type[BaseException], ...] = (UsageError, *errors())
            failed = failures()
        except KeyboardInterrupt:
            return _interrupted(prog, interrupted)
        if isinstance(exc, bad_input):
            print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
            return 2
        if isinstance(exc, failed):
            print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
            return 1
        raise


def _interrupted(prog: str, message: str) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return 130


# ----------------------------------------------------------------------------- entry points
# The console scripts start here. The command's module and torch are imported with SIGINT
# held back: a KeyboardInterrupt raised inside torch's (pybind11) import aborts the whole
# process ("terminate called after throwing ..."). A Ctrl-C that came meanwhile is
# delivered right after, as one line and 130 like any other.


def _launch(prog: str, module: str) -> int:
    from esl_train.openmp import choose_wait_policy

    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            choose_wait_policy()  # before torch loads: passive OpenMP waiting beside busy processes
            main = importlib.import_module(module).main
            importlib.import_module("torch")
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    except KeyboardInterrupt:
        return _interrupted(prog, "interrupted")
    code: int = main()
    return code


def esl_train() -> int:
    return _launch("esl-train", "esl_train.cli")


def esl_export() -> int:
    return _launch("esl-export", "esl_export.cli")


def esl_run() -> int:
    return _launch("esl-run", "esl_export.run")


def esl_energy() -> int:
    return _launch("esl-energy", "esl_energy.cli")


def esl_reproduce() -> int:
    return _launch("esl-reproduce", "esl_reproduce.cli")

"""Command-line entry point: ``unmix <command> ...``.

Each command lives in :mod:`unmix.commands` with ``add_parser(subparsers)`` and
``run(args) -> int``. User errors (:class:`~unmix.errors.UnmixError`) become one
line on stderr and exit code 1; Ctrl-C exits with 130 and SIGTERM, handled the same way
(temporary files removed), with 143.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from types import FrameType

from . import __version__
from .errors import UnmixError
from .text import printable

#: command modules under unmix.commands, in --help order
COMMANDS = ("separate", "models", "train", "convert", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="unmix",
        description="Music source separation with Open-Unmix (UMX) and CrossNet-UMX (X-UMX).",
    )
    parser.add_argument("--version", action="version", version=f"unmix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"unmix.commands.{name}").add_parser(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so it unwinds (and cleans up) as on Ctrl-C."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` while the command runs (main thread only)."""
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="unmix: %(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with _sigterm_as_interrupt():
            code: int = args.run(args)
            sys.stdout.flush()  # surface a closed pipe here, not at interpreter exit
        return code
    except UnmixError as exc:
        print(f"unmix: error: {printable(str(exc))}", file=sys.stderr)
        return 1
    except Terminated:
        print("unmix: interrupted (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("unmix: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `unmix models | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141

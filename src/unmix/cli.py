"""Command-line entry point: ``unmix <command> ...``.

Each command lives in :mod:`unmix.commands` with ``add_parser(subparsers)`` and
``run(args) -> int``. User errors (:class:`~unmix.errors.UnmixError`) become one
line on stderr and exit code 1; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import UnmixError

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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="unmix: %(message)s", stream=sys.stderr)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
        sys.stdout.flush()  # surface a closed pipe here, not at interpreter exit
        return code
    except UnmixError as exc:
        print(f"unmix: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("unmix: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `unmix models | head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141

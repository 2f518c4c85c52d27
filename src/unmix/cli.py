"""Command-line entry point: ``unmix <command> ...``.

Each command lives in a module with ``add_parser(subparsers)`` and ``run(args) -> int``,
named in :data:`COMMANDS` with its one-line summary. Only the chosen command's module is
imported (``unmix --help`` and ``unmix --version`` load neither PyTorch nor SciPy); the
other commands appear in ``--help`` as their summaries. User errors
(:class:`~unmix.errors.UnmixError`) become one line on stderr and exit code 1; Ctrl-C exits
with 130 and SIGTERM, handled the same way (temporary files removed), with 143.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from types import FrameType

from . import __version__
from .errors import UnmixError
from .text import printable

#: command name → (module defining ``add_parser``/``run``, one-line help), in --help order.
#: A new command is one line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "separate": ("unmix.commands.separate", "separate songs into stems"),
    "models": ("unmix.commands.models", "list the pretrained models"),
    "train": ("unmix.commands.train", "train a model on MUSDB18 or your own data"),
    "convert": (
        "unmix.commands.convert",
        "convert NNabla .h5/.zip or .pth weights to an unmix model folder",
    ),
    "evaluate": (
        "unmix.commands.evaluate",
        "score separations with BSSEval v4 (museval's numbers, much faster)",
    ),
    "download": (
        "unmix.commands.download",
        "fetch models or the MUSDB18 previews into the cache (for offline use)",
    ),
    "stream": (
        "unmix.commands.stream",
        "real-time separation: a file (or a sound card) block by block",
    ),
    "completion": ("unmix.commands.completion", "print a bash or zsh completion script"),
    "serve": ("unmix.commands.serve", "a web page: upload a song, listen to the stems, download"),
    "export": (
        "unmix.commands.export",
        "export a model as one ONNX graph (waveform in, stems out)",
    ),
}

#: every command, built in full (the default of :func:`build_parser`)
ALL = "*"

VERBOSITY_HELP = {
    "verbose": "more detail: debug messages (settings, files, decisions)",
    "quiet": "no progress bars and no notes (licence notes included), only errors",
}


def _add_verbosity(parser: argparse.ArgumentParser, dest_prefix: str = "") -> None:
    """``-v/--verbose`` and ``-q/--quiet``, unless the parser has them already."""
    for short, name in (("-v", "verbose"), ("-q", "quiet")):
        if f"--{name}" not in parser._option_string_actions:
            parser.add_argument(
                short, f"--{name}", dest=dest_prefix + name, action="store_true",
                help=VERBOSITY_HELP[name],
            )  # fmt: skip


def build_parser(command: str | None = ALL) -> argparse.ArgumentParser:
    """The argument parser; ``command`` is built in full (:data:`ALL`: every command),
    the others only as a name and summary (enough for ``--help`` and for choosing)."""
    parser = argparse.ArgumentParser(
        prog="unmix",
        description="Music source separation with Open-Unmix (UMX) and CrossNet-UMX (X-UMX).",
        epilog="'unmix COMMAND --help' explains a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"unmix {__version__}")
    _add_verbosity(parser, dest_prefix="global_")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, summary) in COMMANDS.items():
        if command in (ALL, name):
            importlib.import_module(module).add_parser(sub)
            _add_verbosity(sub.choices[name])
            for action in sub._choices_actions:  # the table's summary is the one shown
                if action.dest == name:
                    action.help = summary
        else:
            sub.add_parser(name, help=summary, add_help=False)
    parser.set_defaults(build_parser=build_parser)
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (the first word that is one), or ``None``."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


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


def _show_warning(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: object = None, line: str | None = None,
) -> None:  # fmt: skip
    """Python warnings as one ``unmix: warning: ...`` line (silenced by ``-q``)."""
    logging.getLogger("unmix").warning("warning: %s", message)


def _configure_logging(args: argparse.Namespace) -> int:
    """INFO by default, DEBUG with ``-v``, errors only with ``-q`` (given before or after
    the command); ``args.quiet``/``args.verbose`` then hold the combined choice. Returns the
    ``unmix`` logger's previous level (restored when the command ends)."""
    args.quiet = bool(getattr(args, "quiet", False) or getattr(args, "global_quiet", False))
    args.verbose = bool(getattr(args, "verbose", False) or getattr(args, "global_verbose", False))
    if args.quiet and args.verbose:
        raise UnmixError("-q/--quiet and -v/--verbose contradict each other; choose one")
    level = logging.ERROR if args.quiet else logging.DEBUG if args.verbose else logging.INFO
    logging.basicConfig(
        level=max(level, logging.INFO), format="unmix: %(message)s", stream=sys.stderr
    )
    logger = logging.getLogger("unmix")
    previous = logger.level
    logger.setLevel(level)
    logger.debug("unmix %s, Python %s", __version__, sys.version.split()[0])
    return previous


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(chosen_command(argv))
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    previous_level = logging.getLogger("unmix").level
    previous_show = warnings.showwarning
    try:
        previous_level = _configure_logging(args)
        warnings.showwarning = _show_warning
        with _sigterm_as_interrupt():
            code = run(args)
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
    finally:
        logging.getLogger("unmix").setLevel(previous_level)
        warnings.showwarning = previous_show

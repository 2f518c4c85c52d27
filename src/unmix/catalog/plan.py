"""What a catalog run does: inputs (folders, files, manifests) → jobs → what to skip, redo, or
refuse, given the ledger; the jobs to run ordered longest first."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .. import audio as audio_io
from ..engine import Job, OutputOptions, plan_batch
from ..errors import UnmixError
from .ledger import LEDGER_NAME, LedgerState, Settings, describe_change, file_identity

#: input files with these endings are manifests: one input path per line
MANIFEST_SUFFIXES = (".txt",)
#: largest manifest read (bytes)
MAX_MANIFEST = 64 << 20


def read_manifest(path: Path) -> list[Path]:
    """The paths listed in a manifest, one per line; blank lines and ``#`` comments are
    skipped, relative paths are taken relative to the manifest's folder."""
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST:
            raise UnmixError(
                f"{path}: manifest of {size} bytes is larger than {MAX_MANIFEST}; split it"
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UnmixError(f"{path}: a manifest must be UTF-8 text, one path per line") from None
    except OSError as exc:
        raise UnmixError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from None
    lines = (line.strip() for line in text.splitlines())
    return [path.parent / line for line in lines if line and not line.startswith("#")]


def expand_inputs(inputs: Sequence[Path]) -> list[Path]:
    """Inputs with every manifest replaced by its paths; ``-`` (stdin) is refused: workers
    on other machines cannot read this process's standard input."""
    expanded: list[Path] = []
    for item in inputs:
        if str(item) == "-":
            raise UnmixError(
                "--engine ray cannot read standard input (-); save it to a file that every "
                "node sees, or separate it without --engine ray"
            )
        if item.is_file() and item.suffix.lower() in MANIFEST_SUFFIXES:
            expanded.extend(read_manifest(item))
        else:
            expanded.append(item)
    return expanded


@dataclass(frozen=True)
class Task:
    """One job to run, with absolute paths (every node sees the same file system) and its
    expected audio seconds (None: the probe failed; the worker will report why)."""

    input: Path
    destination: Path
    seconds: float | None


@dataclass
class RunPlan:
    """The inputs of a run: jobs to run (longest first), jobs the ledger says are done,
    and one error line per input that cannot run."""

    tasks: list[Task] = field(default_factory=list)
    done: list[Job] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    nb_inputs: int = 0


def output_folder(destination: Path) -> Path:
    """The folder that holds a job's outputs (``destination`` may be a file name pattern
    with ``{stem}`` in it, or a folder, or the one output file)."""
    folder = destination
    while "{" in folder.name or folder.suffix:
        folder = folder.parent
    return folder


def _existing_output(destination: Path) -> Path | None:
    """An existing output of a job, if any: the file itself, or a file in its folder."""
    if "{" not in str(destination) and destination.is_file():
        return destination
    folder = output_folder(destination)
    if folder.is_dir():
        found = [f for f in folder.iterdir() if f.is_file() and f.name != LEDGER_NAME]
        return found[0] if found else None
    return None


def _probe_seconds(path: Path) -> float | None:
    try:
        seconds = audio_io.info(path).duration
    except (UnmixError, OSError):
        return None
    return float(seconds) if seconds else None


def check_settings(ledger: LedgerState, settings: Settings, force: bool) -> None:
    """Refuse a run whose settings differ from the ledger's (unless ``force``)."""
    old = ledger.settings
    if old is None or force:
        return
    changed = [s for s in [*ledger.run_settings, *(r.settings for r in ledger.latest.values())]
               if s != settings]  # fmt: skip
    if changed:
        raise UnmixError(
            f"{ledger.path} was written with other settings ({describe_change(changed[-1], settings)}); "
            "use another --out-dir, or --force to redo every input with the new settings"
        )


def _is_done(ledger: LedgerState, job: Job, out_dir: Path) -> bool:
    record = ledger.latest.get(str(job.path))
    if record is None or record.status != "done" or not record.outputs:
        return False
    try:
        identity = file_identity(job.path)
    except OSError:
        return False
    return identity == (record.size, record.mtime_ns) and all(
        (out_dir / o).is_file() for o in record.outputs
    )


def plan_run(
    inputs: Sequence[Path], options: OutputOptions, ledger: LedgerState, settings: Settings
) -> RunPlan:
    """Find the inputs, decide what to skip and what to (re)do, order the rest longest first.

    An input is skipped when the ledger's latest line for it is ``done``, the file's size
    and modification time are those recorded and every recorded output exists. Without a
    ledger, existing outputs are refused (their settings are unknown) unless
    ``options.force``; with a ledger of the same settings, any input not done is redone,
    replacing what a killed run left.

    Raises:
        UnmixError: changed settings without force, unknown existing outputs, no inputs.
    """
    check_settings(ledger, settings, options.force)
    absolute = [p if p.is_absolute() else Path(os.path.abspath(p)) for p in expand_inputs(inputs)]
    batch = plan_batch(absolute, options)
    plan = RunPlan(errors=list(batch.errors), nb_inputs=batch.nb_inputs)
    todo: list[Job] = []
    for job in batch.jobs:
        if not options.force and ledger.exists and _is_done(ledger, job, options.out_dir):
            plan.done.append(job)
        else:
            todo.append(job)
    if not ledger.exists and not options.force:
        existing = next((e for j in todo if (e := _existing_output(j.destination))), None)
        if existing is not None:
            raise UnmixError(
                f"{existing} exists but {options.out_dir / LEDGER_NAME} does not record it, "
                "so its settings are unknown; choose another --out-dir, or --force to redo it"
            )
    with ThreadPoolExecutor(max_workers=8) as pool:
        seconds = list(pool.map(_probe_seconds, [j.path for j in todo]))
    tasks = [Task(j.path, j.destination, s) for j, s in zip(todo, seconds, strict=True)]
    plan.tasks = sorted(tasks, key=lambda t: -(t.seconds if t.seconds is not None else -1.0))
    return plan


def archive_ledger(ledger: LedgerState) -> Path | None:
    """With ``--force``: move the old ledger aside (``unmix-run.<UTC time>.jsonl``) so the
    new run starts a fresh one; returns where it went."""
    if not ledger.exists:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = ledger.path.with_name(f"unmix-run.{stamp}.jsonl")
    n = 1
    while target.exists():
        n += 1
        target = ledger.path.with_name(f"unmix-run.{stamp}-{n}.jsonl")
    os.replace(ledger.path, target)
    return target

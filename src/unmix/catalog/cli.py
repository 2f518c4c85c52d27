"""``unmix separate ... --engine ray``: the options and the driver of a catalog run.

The driver plans the run (:mod:`unmix.catalog.plan`), appends the ledger
(:mod:`unmix.catalog.ledger`) as records arrive, prints progress and results, and leaves
the separation to the Ray actors (:mod:`unmix.catalog.pipeline`, imported only here, only
with ``--engine ray``, so that Ray stays an optional extra).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import __version__
from ..engine import OutputOptions, prepare_out_dir
from ..errors import UnmixError
from ..fileio import remove_stale_temporaries
from ..text import printable
from .ledger import LEDGER_NAME, LEDGER_VERSION, FileRecord, LedgerWriter, Settings, read_ledger
from .plan import RunPlan, archive_ledger, output_folder, plan_run
from .progress import Progress

#: the values of --engine
ENGINES = ("local", "ray")


def add_engine_options(group: argparse._ArgumentGroup) -> None:
    """``--engine --address --workers --gpus-per-worker --threads-per-worker``."""
    group.add_argument(
        "--engine",
        default="local",
        choices=ENGINES,
        help="local: this process; ray: a Ray cluster with a run ledger OUT/"
        f"{LEDGER_NAME}, resumable (pip install 'unmix[ray]'; see docs/catalog.md)",
    )
    group.add_argument(
        "--address",
        default=None,
        metavar="A",
        help="with --engine ray: address of a running Ray cluster (default: start a local one)",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="with --engine ray: actors, each loading the model once (default: the "
        "cluster's CPUs / --threads-per-worker)",
    )
    group.add_argument(
        "--gpus-per-worker",
        type=float,
        default=0.0,
        metavar="F",
        help="with --engine ray: GPUs per actor, e.g. 0.5 puts two on a GPU (default: 0, CPU)",
    )
    group.add_argument(
        "--threads-per-worker",
        type=int,
        default=1,
        metavar="T",
        help="with --engine ray: CPU threads (and Ray CPUs) per actor (default: 1)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """What decides the stems, as recorded in the ledger (JSON types only)."""
    model = str(args.model)
    if Path(model).exists():
        model = os.path.abspath(model)
    extra: dict[str, Any] = {}  # only when set: ledgers written before these options match
    if args.shifts > 1:
        extra["shifts"] = int(args.shifts)
    if args.precision != "fp32":
        extra["precision"] = str(args.precision)
    if args.ensemble_weights:
        extra["ensemble_weights"] = list(args.ensemble_weights)
    return {
        **extra,
        "model": model,
        "targets": list(args.targets) if args.targets else None,
        "niter": int(args.niter),
        "softmask": bool(args.softmask),
        "residual": bool(args.residual),
        "wiener_win_len": int(args.wiener_win_len),
        "format": str(args.format),
        "bits": args.bits,
        "start": float(args.start),
        "duration": None if args.duration is None else float(args.duration),
        "segment": float(args.segment),
        "overlap": float(args.overlap),
    }


def _check(args: argparse.Namespace) -> None:
    checks = [
        (args.jobs is None, "--jobs is for the local engine; use --workers with --engine ray"),
        (getattr(args, "threads", None) is None,
         "--threads is for the local engine; use --threads-per-worker with --engine ray"),
        (args.workers is None or args.workers >= 1, f"--workers must be >= 1, got {args.workers}"),
        (args.threads_per_worker >= 1,
         f"--threads-per-worker must be >= 1, got {args.threads_per_worker}"),
        (args.gpus_per_worker >= 0,
         f"--gpus-per-worker must be >= 0, got {args.gpus_per_worker}"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise UnmixError(message)


class Reporter:
    """Results on stdout, errors and progress on stderr (progress not with --quiet)."""

    def __init__(self, quiet: bool, plan: RunPlan) -> None:
        self.quiet = quiet
        self.progress = Progress(plan.tasks)
        self.seconds = {str(t.input): t.seconds for t in plan.tasks}

    def note(self, message: str) -> None:
        if not self.quiet:
            print(f"unmix: {printable(message)}", file=sys.stderr, flush=True)

    def error(self, message: str) -> None:
        print(f"unmix: error: {printable(message)}", file=sys.stderr, flush=True)

    def record(self, record: FileRecord) -> None:
        self.progress.update(record, self.seconds.get(record.input))
        if record.status == "done":
            speed = record.seconds / record.duration if record.duration > 0 else float("inf")
            print(
                printable(f"{record.input} -> {len(record.outputs)} stems ({record.seconds:.1f} s "
                          f"of audio, {speed:.1f}x real time on {record.worker})"),
                flush=True,
            )  # fmt: skip
        else:
            self.error(record.error or f"{record.input}: failed")
        self.note(self.progress.line())


def output_settings(options: OutputOptions) -> Settings:
    """The output options that decide file names and contents, as JSON types."""
    skip = ("out_dir", "force", "jobs", "batch_size")  # batches do not change the stems
    fields = {k: v for k, v in asdict(options).items() if k not in skip}
    return dict(json.loads(json.dumps(fields, sort_keys=True, default=str)))


def run_catalog(args: argparse.Namespace, options: OutputOptions | None = None) -> int:
    """Run ``unmix separate`` on Ray; returns the exit code (1 if any input failed).

    ``options``: the output options the plain CLI would use (Default: built from ``args``).
    """
    _check(args)
    out_dir = Path(os.path.abspath(args.out_dir))
    if options is None:
        options = OutputOptions(out_dir, args.format, args.bits, args.force, args.start,
                                args.duration)  # fmt: skip
    options = replace(options, out_dir=out_dir, force=bool(args.force))
    settings = {**settings_from_args(args), "output": output_settings(options)}
    prepare_out_dir(out_dir)
    ledger = read_ledger(out_dir)
    plan = plan_run(args.inputs, options, ledger, settings)
    reporter = Reporter(args.quiet, plan)
    for message in plan.errors:
        reporter.error(message)
    if plan.done:
        reporter.note(f"{len(plan.done)} inputs already done (see {ledger.path})")
    if not plan.tasks:
        if not plan.done:
            raise UnmixError("nothing to separate")
        return 1 if plan.errors else 0
    from .worker import load_for  # PyTorch: only once there is work (plain separate avoids it)

    load_for(settings, "cpu")  # a bad --model or --targets fails here, before any cluster
    if args.force and (moved := archive_ledger(ledger)) is not None:
        reporter.note(f"--force: the previous ledger is now {moved}")
    failed = _run_on_ray(args, options, settings, plan, reporter)
    for folder in {output_folder(t.destination) for t in plan.tasks}:
        remove_stale_temporaries(folder)  # what killed actors left
    if failed or plan.errors:
        reporter.error(f"{failed + len(plan.errors)} of {plan.nb_inputs} inputs failed, see "
                       f"above and {out_dir / LEDGER_NAME}")  # fmt: skip
    return 1 if failed or plan.errors else 0


#: how a worker's record names a full file system (``strerror(ENOSPC)``)
DISK_FULL = os.strerror(errno.ENOSPC)


def stop_if_disk_full(record: FileRecord) -> None:
    """Stop the run when an output file system is full: every further file would fail too.

    Raises:
        UnmixError: ``record`` failed with ENOSPC.
    """
    if record.status == "failed" and DISK_FULL in (record.error or ""):
        raise UnmixError(
            f"{record.error}; stopping: free space on the output file system and run the same "
            "command again (the ledger resumes where this run stopped)"
        )


def _pipeline() -> ModuleType:
    """:mod:`unmix.catalog.pipeline`, imported on first use: Ray is an optional extra."""
    try:
        return importlib.import_module("unmix.catalog.pipeline")
    except ImportError as exc:
        raise UnmixError(
            f"--engine ray needs Ray ({exc}); install it with: pip install 'unmix[ray]'"
        ) from None


def _run_on_ray(
    args: argparse.Namespace, options: OutputOptions, settings: Settings, plan: RunPlan,
    reporter: Reporter,
) -> int:  # fmt: skip
    """Start (or join) the cluster, run the tasks, append the ledger; returns failures."""
    out_dir = options.out_dir
    pipeline = _pipeline()
    started_here = pipeline.connect(args.address)
    writer = LedgerWriter(out_dir / LEDGER_NAME)
    try:
        workers = args.workers or max(1, pipeline.cluster_cpus() // args.threads_per_worker)
        workers = min(workers, len(plan.tasks))  # an actor per file at most
        writer.append({
            "kind": "run", "version": LEDGER_VERSION, "unmix": __version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "settings": settings, "inputs": plan.nb_inputs, "todo": len(plan.tasks),
            "workers": workers, "threads_per_worker": args.threads_per_worker,
            "gpus_per_worker": args.gpus_per_worker,
        })  # fmt: skip
        reporter.note(f"{len(plan.tasks)} inputs on {workers} Ray workers "
                      f"({args.threads_per_worker} threads each)")  # fmt: skip

        def on_record(record: FileRecord) -> None:
            writer.append(record.to_json())
            reporter.record(record)
            stop_if_disk_full(record)

        from .worker import worker_kwargs

        device = "cuda" if args.gpus_per_worker > 0 else "cpu"
        kwargs = worker_kwargs(settings, options, device, args.threads_per_worker)
        pipeline.run_tasks(plan.tasks, kwargs, workers, args.threads_per_worker,
                           args.gpus_per_worker, on_record)  # fmt: skip
    finally:
        writer.close()
        if started_here:
            pipeline.disconnect()
    return reporter.progress.failed

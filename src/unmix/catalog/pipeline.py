"""The Ray Data pipeline: task rows, longest first → an actor pool of
:class:`~unmix.catalog.worker.SeparateWorker` → ledger records, streamed back to the driver.

The only module that imports Ray (``unmix[ray]``). Ray Data creates the actors with
``max_restarts=-1`` and ``max_task_retries=-1``: an actor that dies (killed, out of memory,
its node gone) is restarted where resources are free and its file is separated again; the
driver receives each file's record once, when the task that produced it succeeds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import ray
import ray.data

from ..errors import UnmixError
from .ledger import FileRecord
from .plan import Task
from .worker import SeparateWorker

#: most blocks a run's input is cut into (one file per block up to this; the retry unit)
MAX_BLOCKS = 10_000


def connect(address: str | None) -> bool:
    """Join the cluster at ``address`` (None: start a local one); True if this call did it."""
    if ray.is_initialized():
        return False
    logging.getLogger("ray").setLevel(logging.WARNING)
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise UnmixError(f"cannot start or reach {where}: {' '.join(str(exc).split())}") from None
    return True


def disconnect() -> None:
    """Leave the cluster (a local one stops)."""
    ray.shutdown()


def cluster_cpus() -> int:
    """CPUs of the whole cluster."""
    resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
    return int(resources.get("CPU", 1))


def run_tasks(
    tasks: Sequence[Task],
    worker_kwargs: dict[str, Any],
    workers: int,
    threads: int,
    gpus: float,
    on_record: Callable[[FileRecord], None],
) -> None:
    """Separate ``tasks`` on ``workers`` actors, calling ``on_record`` as each file ends.

    Raises:
        UnmixError: the pipeline itself failed (e.g. no actor could load the model).
    """
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    rows = [{"input": str(t.input)} for t in tasks]
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), MAX_BLOCKS))
    remote: dict[str, Any] = {"num_cpus": threads}
    if gpus > 0:
        remote["num_gpus"] = gpus
    results = ds.map_batches(
        SeparateWorker,
        fn_constructor_kwargs=worker_kwargs,
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        **remote,
    )
    try:
        for row in results.iter_rows():
            on_record(FileRecord.from_json(json.loads(str(row["record"]))))
    except ray.exceptions.RayError as exc:
        first = next((line for line in str(exc).splitlines() if line.strip()), repr(exc))
        raise UnmixError(f"the Ray pipeline failed: {first.strip()}") from None

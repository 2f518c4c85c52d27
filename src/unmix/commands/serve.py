"""``unmix serve``: the web page and HTTP API (extra ``web``; see docs/web.md).

Parsing only; :mod:`unmix.web` (Starlette, uvicorn, torch) is imported when the command
runs, so that ``unmix --help`` stays light.
"""

from __future__ import annotations

import argparse
import importlib
import os
from pathlib import Path

from ..errors import UnmixError
from .common import (
    add_device_option,
    add_precision_option,
    add_wiener_options,
    wiener_from_args,
)

EPILOG = """\
The page: open http://HOST:PORT/ (with --token, open it as http://HOST:PORT/#token=TOKEN
or type the token into the page). The API: docs/web.md.

examples:
  unmix serve --model umx-preview
  UNMIX_SERVE_TOKEN=$(openssl rand -hex 16) unmix serve --host 0.0.0.0 --keep-minutes 30
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="a web page to upload songs, listen to the stems and download them",
        description="Serve a web page and an HTTP API that separate uploaded songs "
        "(needs the extra: pip install 'unmix[web]').",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--model", default="umx-preview",
        help="model to serve; a+b averages an ensemble (default: umx-preview)",
    )  # fmt: skip
    p.add_argument(
        "--max-upload-mb", type=float, default=200.0, metavar="MB",
        help="largest upload in MB (default: 200)",
    )  # fmt: skip
    p.add_argument(
        "--jobs-dir", type=Path, default=Path("unmix-jobs"), metavar="DIR",
        help="folder for uploads and stems, emptied at start and stop (default: ./unmix-jobs)",
    )  # fmt: skip
    p.add_argument(
        "--keep-minutes", type=float, default=60.0, metavar="N",
        help="delete finished jobs and their files after N minutes (default: 60)",
    )  # fmt: skip
    p.add_argument(
        "--token", default=os.environ.get("UNMIX_SERVE_TOKEN"),
        help="access token every request must carry; required with a --host other than "
        "loopback (default: $UNMIX_SERVE_TOKEN)",
    )  # fmt: skip
    p.add_argument(
        "--max-queue", type=int, default=16, metavar="N",
        help="most jobs waiting at once; more are refused with 503 (default: 16)",
    )  # fmt: skip
    add_wiener_options(p.add_argument_group("separation"))
    device = p.add_argument_group("device")
    add_device_option(device)
    add_precision_option(device)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        server = importlib.import_module("unmix.web.server")
    except ImportError as exc:
        raise UnmixError(
            f"unmix serve needs the web extra ({exc.name} is missing): pip install 'unmix[web]'"
        ) from exc
    options = server.ServeOptions(
        host=args.host,
        port=args.port,
        model=args.model,
        max_upload_mb=args.max_upload_mb,
        jobs_dir=args.jobs_dir,
        keep_minutes=args.keep_minutes,
        token=args.token,
        max_queue=args.max_queue,
        device=args.device,
        wiener=wiener_from_args(args),
        precision=args.precision,
    )
    server.check_options(options)
    server.serve(options)
    return 0

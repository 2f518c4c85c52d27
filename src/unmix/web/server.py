"""Load the model once and run the app on uvicorn."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..device import pick_device
from ..ensemble import ensemble_parts
from ..errors import UnmixError
from ..filtering import WienerSettings
from ..hub.loading import load_model
from ..precision import DEFAULT_PRECISION, check_precision
from .app import Settings, create_app
from .security import Guard, is_loopback
from .worker import Separators

log = logging.getLogger("unmix.web")
#: shortest token accepted (characters)
MIN_TOKEN = 16


@dataclass(frozen=True)
class ServeOptions:
    """The ``unmix serve`` options (see ``unmix serve --help``)."""

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = "umx-preview"
    max_upload_mb: float = 200.0
    jobs_dir: Path = Path("unmix-jobs")
    keep_minutes: float = 60.0
    token: str | None = None
    max_queue: int = 16
    device: str | None = None
    wiener: WienerSettings = field(default_factory=WienerSettings)
    precision: str = DEFAULT_PRECISION


def check_options(options: ServeOptions) -> list[str]:
    """Refuse unsafe or impossible options; returns warnings to print."""
    if not 0 < options.max_upload_mb < 1e6:
        raise UnmixError(f"--max-upload-mb must be > 0, got {options.max_upload_mb:g}")
    if not 0 < options.keep_minutes <= 7 * 24 * 60:
        raise UnmixError(
            f"--keep-minutes must be > 0 and at most a week, got {options.keep_minutes:g}"
        )
    if not 1 <= options.max_queue <= 1000:
        raise UnmixError(f"--max-queue must be between 1 and 1000, got {options.max_queue}")
    if not 0 <= options.port <= 65535:
        raise UnmixError(f"--port must be between 0 and 65535, got {options.port}")
    check_precision(options.precision, pick_device(options.device))  # before loading
    if options.token is not None and len(options.token) < MIN_TOKEN:
        raise UnmixError(f"--token must have at least {MIN_TOKEN} characters")
    if is_loopback(options.host):
        return []
    if options.token is None:
        raise UnmixError(
            f"--host {options.host} makes the server reachable from other machines; give "
            "--token (or set UNMIX_SERVE_TOKEN) so that only people with the token can use it"
        )
    return [
        f"warning: listening on {options.host}:{options.port}, reachable from the network; "
        "requests need the token; put a TLS reverse proxy in front (see docs/web.md)"
    ]


def serve(options: ServeOptions) -> None:
    """Run the server until Ctrl-C (blocks)."""
    import uvicorn

    for warning in check_options(options):
        log.warning(warning)
    parts = ensemble_parts(options.model)  # a+b: an ensemble, checked before serving
    loaded = [(part, *load_model(part)) for part in parts]
    _, config, model = loaded[0]
    members = [(p, c, m.freeze()) for p, c, m in loaded] if len(parts) > 1 else []
    device = pick_device(options.device)
    precision = check_precision(options.precision, device)
    separators = Separators(config, model.freeze(), options.wiener, device, members, precision)
    separators.get(separators.targets)
    settings = Settings(
        model=options.model,
        jobs_dir=options.jobs_dir,
        max_upload=int(options.max_upload_mb * 1e6),
        keep_seconds=options.keep_minutes * 60,
        max_pending=options.max_queue,
        guard=Guard.for_bind(options.host, options.token),
    )
    app = create_app(settings, separators)
    api = app.state.api
    if api.store.removed_at_start:
        log.info("removed %d job folders left by an earlier server", api.store.removed_at_start)
    shown = f"[{options.host}]" if ":" in options.host else options.host
    log.info("serving %s on http://%s:%d/ (Ctrl-C stops)", options.model, shown, options.port)
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning")

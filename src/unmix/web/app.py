"""The ASGI application: the page, and the HTTP API of ``docs/web.md``.

``create_app`` claims the jobs folder (deleting what an earlier server left) and returns a
Starlette app whose lifespan runs the :class:`~unmix.web.worker.Worker`; on shutdown every
job folder is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .downloads import MEDIA_TYPES, attachment, safe_name, zip_stream
from .jobs import Job, JobStore
from .security import Guard, SecurityHeaders
from .upload import UploadError, receive
from .worker import Separators, Worker

#: output formats the server offers (each stem one file a browser can play)
WEB_FORMATS = ("wav", "flac", "mp3")
#: the page's files: URL name → media type
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "player.js": "text/javascript; charset=utf-8",
}
#: bytes a multipart body may carry besides the file (boundaries, headers, fields)
FORM_OVERHEAD = 64 << 10


@dataclass(frozen=True)
class Settings:
    """How the server behaves.

    Attributes:
        model: the model's name, shown on the page.
        jobs_dir: the jobs folder.
        max_upload: largest upload (bytes).
        keep_seconds: how long finished jobs are kept.
        max_pending: most jobs uploading or waiting at once (more get 503).
        guard: token and Host checks.
        sweep_every: seconds between expiry sweeps.
        upload_idle: seconds an upload may send nothing before it is refused (408).
    """

    model: str
    jobs_dir: Path
    max_upload: int = 200_000_000
    keep_seconds: float = 3600.0
    max_pending: int = 16
    guard: Guard = field(default_factory=Guard)
    sweep_every: float = 10.0
    upload_idle: float = 60.0


def error(status: int, message: str, **headers: str) -> JSONResponse:
    """The API's error response: ``{"error": message}``."""
    return JSONResponse({"error": message}, status, headers=headers or None)


class Api:
    """The request handlers, sharing the store, the worker and the settings."""

    def __init__(self, settings: Settings, separators: Separators) -> None:
        self.settings = settings
        self.separators = separators
        self.store = JobStore(settings.jobs_dir, settings.keep_seconds, settings.max_pending)
        self.worker = Worker(self.store, separators, sweep_every=settings.sweep_every)

    def check(self, request: Request) -> JSONResponse | None:
        guard = self.settings.guard
        if problem := guard.host_problem(request):
            return error(400, problem)
        if problem := guard.origin_problem(request):
            return error(403, problem)
        if problem := guard.token_problem(request):
            return error(401, problem, **{"WWW-Authenticate": "Bearer"})
        return None

    def job(self, request: Request) -> Job | JSONResponse:
        if refused := self.check(request):
            return refused
        job = self.store.get(request.path_params["id"])
        if job is None:
            return error(404, "no such job (it was deleted or has expired)")
        return job

    # the page
    async def static(self, request: Request) -> Response:
        if problem := self.settings.guard.host_problem(request):
            return error(400, problem)
        name = request.path_params.get("name", "index.html")
        if name not in STATIC:
            return error(404, "not found")
        body = resources.files("unmix.web").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "no-cache"})

    async def info(self, request: Request) -> Response:
        if refused := self.check(request):
            return refused
        return JSONResponse(
            {
                "model": self.settings.model,
                "targets": list(self.separators.targets),
                "formats": list(WEB_FORMATS),
                "max_upload_mb": self.settings.max_upload / 1e6,
                "keep_minutes": self.settings.keep_seconds / 60,
            }
        )

    # jobs
    async def create(self, request: Request) -> Response:
        if refused := self.check(request):
            return refused
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.settings.max_upload + FORM_OVERHEAD:
            return error(413, self._too_large())
        job = self.store.reserve("", (), "wav")
        if job is None:
            return error(
                503, "the server's queue is full; try again in a minute", **{"Retry-After": "30"}
            )
        try:
            content_type = request.headers.get("content-type", "")
            upload = await receive(
                request.stream(), content_type, job.input, self.settings.max_upload,
                self.settings.upload_idle,
            )  # fmt: skip
            job.targets, job.fmt = self._options(upload.fields)
        except UploadError as exc:
            self.store.discard(job)
            return error(exc.status, str(exc))
        except BaseException:  # the client went away, or the server stops
            self.store.discard(job)
            raise
        job.name = upload.filename or ""
        self.store.submit(job)
        return JSONResponse({"id": job.id}, 202, headers={"Location": f"/api/jobs/{job.id}"})

    def _too_large(self) -> str:
        return (
            f"the upload is larger than this server's limit of {self.settings.max_upload / 1e6:g}"
            " MB (--max-upload-mb); nothing was kept"
        )

    def _options(self, fields: dict[str, list[str]]) -> tuple[tuple[str, ...], str]:
        known = self.separators.targets
        names = [n for v in fields.get("targets", []) for n in re.split(r"[\s,]+", v) if n]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UploadError(
                400, f"unknown target {unknown[0]!r}; this model has {', '.join(known)}"
            )
        if len(set(names)) != len(names):
            raise UploadError(400, "a target is named twice in 'targets'")
        formats = fields.get("format", ["wav"])
        if len(formats) != 1 or formats[0] not in WEB_FORMATS:
            raise UploadError(400, f"format must be one of {', '.join(WEB_FORMATS)}")
        return tuple(names) or known, formats[0]

    async def status(self, request: Request) -> Response:
        job = self.job(request)
        if isinstance(job, Response):
            return job
        return JSONResponse(job.public(self.store.expires_in(job)))

    async def events(self, request: Request) -> Response:
        job = self.job(request)
        if isinstance(job, Response):
            return job
        return StreamingResponse(
            self._event_stream(job),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def _event_stream(self, job: Job) -> AsyncIterator[str]:
        last = None
        while True:
            gone = self.store.get(job.id) is None
            state = json.dumps(job.public(self.store.expires_in(job)))
            if state != last:
                yield f"data: {state}\n\n"
                last = state
            if gone or job.state in ("done", "failed"):
                return
            await asyncio.sleep(0.25)

    def _finished(self, job: Job) -> JSONResponse | None:
        if job.state == "failed":
            return error(409, f"the job failed: {job.error}")
        if job.state != "done":
            return error(409, f"the job is {job.state}; wait until its state is done")
        return None

    async def stem(self, request: Request) -> Response:
        job = self.job(request)
        if isinstance(job, Response):
            return job
        if refused := self._finished(job):
            return refused
        target = request.path_params["target"]
        path = job.outputs.get(target)
        if path is None:
            return error(404, f"no stem {target!r}; this job has {', '.join(job.outputs)}")
        name = f"{safe_name(job.name)}-{target}{path.suffix}"
        return FileResponse(
            path, media_type=MEDIA_TYPES[job.fmt], headers={"Content-Disposition": attachment(name)}
        )

    async def archive(self, request: Request) -> Response:
        job = self.job(request)
        if isinstance(job, Response):
            return job
        if refused := self._finished(job):
            return refused
        files = {p.name: p for p in job.outputs.values()}
        name = f"{safe_name(job.name)}-stems.zip"
        return StreamingResponse(
            zip_stream(files),
            media_type="application/zip",
            headers={"Content-Disposition": attachment(name)},
        )

    async def delete(self, request: Request) -> Response:
        job = self.job(request)
        if isinstance(job, Response):
            return job
        self.store.discard(job)
        return Response(status_code=204)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.worker.start()
        try:
            yield
        finally:
            await asyncio.to_thread(self.worker.stop)
            self.store.close()


def create_app(settings: Settings, separators: Separators) -> Starlette:
    """The server's ASGI app (claims ``settings.jobs_dir``; raises UnmixError if it cannot)."""
    api = Api(settings, separators)
    routes = [
        Route("/", api.static, methods=["GET"]),
        Route("/static/{name}", api.static, methods=["GET"]),
        Route("/api/info", api.info, methods=["GET"]),
        Route("/api/jobs", api.create, methods=["POST"]),
        Route("/api/jobs/{id}", api.status, methods=["GET"]),
        Route("/api/jobs/{id}", api.delete, methods=["DELETE"]),
        Route("/api/jobs/{id}/events", api.events, methods=["GET"]),
        Route("/api/jobs/{id}/stems.zip", api.archive, methods=["GET"]),
        Route("/api/jobs/{id}/stems/{target}", api.stem, methods=["GET"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)], lifespan=api.lifespan)
    app.state.api = api
    return app

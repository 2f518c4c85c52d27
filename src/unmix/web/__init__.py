"""``unmix serve``: a web page and an HTTP API around the separation engine (extra ``web``).

* :mod:`~unmix.web.app` — the Starlette app: the page and the API (``docs/web.md``).
* :mod:`~unmix.web.jobs` — the job store: job folders, bounded queue, expiry, restart cleanup.
* :mod:`~unmix.web.worker` — one thread separating queued jobs with the CLI's engine.
* :mod:`~unmix.web.upload` — multipart uploads streamed to disk under the size cap.
* :mod:`~unmix.web.downloads` — download names and the streamed ``stems.zip``.
* :mod:`~unmix.web.security` — token, Host and Origin checks; security headers.
* :mod:`~unmix.web.server` — loading the model and running uvicorn.
* ``static/`` — the page (HTML, CSS, JavaScript; no build step, no network).
"""

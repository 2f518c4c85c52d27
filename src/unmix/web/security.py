"""Request checks (token, Host, Origin) and the security headers of every response."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: the host names of this machine that a loopback-only server answers to
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: the cookie the page stores a token in (so that plain download links carry it)
TOKEN_COOKIE = "unmix_token"
HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
     b"form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]  # fmt: skip


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine."""
    return host.strip("[]") in LOOPBACK_HOSTS or host.startswith("127.")


def _hostname(netloc: str) -> str:
    return (urlsplit(f"//{netloc}").hostname or "").lower()


@dataclass(frozen=True)
class Guard:
    """What a request must satisfy.

    Attributes:
        token: the secret every API request must carry (``Authorization: Bearer`` or the
            page's cookie), or None for none.
        hosts: the ``Host`` names accepted (None: any); a loopback server accepts only its
            own names, which stops DNS-rebinding pages from reaching it.
    """

    token: str | None = None
    hosts: frozenset[str] | None = None

    @classmethod
    def for_bind(cls, host: str, token: str | None, extra_hosts: Iterable[str] = ()) -> Guard:
        """The guard of a server bound to ``host``."""
        hosts = LOOPBACK_HOSTS | set(extra_hosts) if is_loopback(host) else None
        return cls(token, frozenset(hosts) if hosts is not None else None)

    def host_problem(self, request: Request) -> str | None:
        """Why the ``Host`` header is refused (None when accepted)."""
        if self.hosts is None:
            return None
        if _hostname(request.headers.get("host", "")) not in self.hosts:
            return "unknown Host header; open the page at the address the server printed"
        return None

    def origin_problem(self, request: Request) -> str | None:
        """Why a state-changing request from another site is refused (None when fine)."""
        origin = request.headers.get("origin")
        if request.method in ("GET", "HEAD") or origin is None:
            return None
        if urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower():
            return "cross-site requests are refused"
        return None

    def token_problem(self, request: Request) -> str | None:
        """Why the request is not authorised (None when it is, or no token is set)."""
        if self.token is None:
            return None
        given = request.cookies.get(TOKEN_COOKIE, "")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return "this server needs its access token (Authorization: Bearer TOKEN)"
        return None


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)

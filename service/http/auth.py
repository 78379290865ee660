"""Bearer-key authentication and role guards for the HTTP API.

Routes that need no key (health, the OpenAPI document and reference page, the
dashboard's static files, the public log under /ledger) are excluded by path; every other route declares the
permission it needs with `guards=[requires(Permission.X)]`.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.base import DefineMiddleware
from litestar.types import ASGIApp

from service.auth import ApiKey, Permission
from service.http.problems import ProblemError

# The public log (checkpoints, tiles, proofs, the log's key) is public too: it
# serves hashes and signatures, never contents (service/http/tiles.py).
PUBLIC_PATHS = [
    "^/health", "^/schema", "^/docs", "^/static", "^/$", "^/favicon",
    "^/ledger/(checkpoint|tile/|proofs/|public-key|receipts$)",
]


class FailedAuthThrottle:
    """Throttles repeated failed authentication per client address.

    Kept in process memory on purpose: it protects against guessing, it is not part
    of the record, and losing it on restart is harmless."""

    def __init__(self, limit: int = 10, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(client, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def retry_after(self, client: str) -> int | None:
        now = time.monotonic()
        failures = self._recent(client, now)
        if len(failures) < self.limit:
            return None
        return max(1, int(failures[0] + self.window - now) + 1)

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
            self._failures.clear()
        self._recent(client, time.monotonic()).append(time.monotonic())


class BearerKeyMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp, *, throttle: FailedAuthThrottle, **options: Any) -> None:
        super().__init__(app, **options)
        # One per app (Settings.auth_failure_limit): two apps in one process, as
        # in the tests, never count each other's failures.
        self.throttle = throttle

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        # The TCP peer, or what a proxy of PARLEY_TRUSTED_PROXIES says (uvicorn's
        # proxy headers are on only for those: service.cli.serve).
        client = connection.client.host if connection.client else "unknown"
        header = connection.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            self._refuse_if_throttled(client)
            raise NotAuthorizedException("Send an API key as `Authorization: Bearer <key>`.")
        # From the process's key cache (a revoked key is refused within a second).
        api_key = await connection.app.state.runtime.keys.authenticate(key.strip())
        if api_key is not None:
            # A valid key is never refused: one guesser behind a shared address
            # (a proxy, a NAT) must not lock out everyone else there.
            return AuthenticationResult(user=api_key, auth=api_key)
        self._refuse_if_throttled(client)
        self.throttle.failed(client)
        raise NotAuthorizedException("The API key is unknown or revoked.")

    def _refuse_if_throttled(self, client: str) -> None:
        wait = self.throttle.retry_after(client)
        if wait is not None:
            raise ProblemError(
                429,
                "too-many-failed-authentications",
                "Too many failed authentications",
                f"Too many failed attempts from this address; retry in {wait} s.",
                headers={"Retry-After": str(wait)},
                retry_after=wait,
            )


def authentication_middleware(failure_limit: int) -> DefineMiddleware:
    """Bearer keys; `failure_limit` failed authentications per client address per
    minute before 429 (a valid key is never refused)."""
    return DefineMiddleware(BearerKeyMiddleware, exclude=PUBLIC_PATHS, throttle=FailedAuthThrottle(limit=failure_limit))


def requires(permission: Permission):
    """A guard: the request's key must have this permission.

    A coroutine function on purpose: Litestar runs a plain function guard in its
    thread pool (a thread hop on every request); this one only reads the scope."""

    async def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        # OPTIONS only says which methods a path has (Litestar's own handler, which
        # a controller's guards reach too); it needs no key, as authentication
        # skips it (each method it lists keeps its own guard).
        if connection.scope.get("method") == "OPTIONS":
            return
        key = connection.scope.get("user")
        if not isinstance(key, ApiKey):
            raise NotAuthorizedException("Send an API key as `Authorization: Bearer <key>`.")
        if not key.may(permission):
            raise PermissionDeniedException(f"A {key.role.value} key may not {permission.value.replace('_', ' ')}.")

    guard.__name__ = f"requires_{permission.value}"
    return guard


def current_key(connection: ASGIConnection) -> ApiKey:
    key = connection.scope.get("user")
    if not isinstance(key, ApiKey):
        raise NotAuthorizedException("Send an API key as `Authorization: Bearer <key>`.")
    return key

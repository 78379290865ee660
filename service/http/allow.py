"""`OPTIONS` answers `Allow` with every method of the path.

Litestar builds a path's OPTIONS handler with the first route registered for
it, so a path served by two handlers (`GET` and `POST /negotiations`) answered
`Allow: GET, OPTIONS`. This hook rewrites the header of every OPTIONS answer
from the app's route table as it stands once the app is built (a 405 already
takes its `Allow` from the full route).
"""

from __future__ import annotations

from typing import Any

from litestar.routes import HTTPRoute

_ALLOW = b"allow"


def _methods_by_path(app: Any) -> dict[str, str]:
    cached = getattr(app.state, "allow_by_path", None)
    if cached is None:
        cached = {
            route.path: ", ".join(sorted({*route.methods, "OPTIONS"}))
            for route in app.routes
            if isinstance(route, HTTPRoute)
        }
        app.state.allow_by_path = cached
    return cached


async def allow_every_method(message: Any, scope: Any) -> None:
    """before_send hook: the right `Allow` on OPTIONS answers."""
    if message.get("type") != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    headers = message.get("headers")
    if not headers or not any(name.lower() == _ALLOW for name, _ in headers):
        return
    handler = scope.get("route_handler")
    paths = getattr(handler, "paths", None) if handler is not None else None
    if not paths:
        return
    allow = _methods_by_path(scope["app"]).get(next(iter(paths)))
    if allow is None:
        return
    message["headers"] = [(n, v) for n, v in headers if n.lower() != _ALLOW] + [(_ALLOW, allow.encode("latin-1"))]


__all__ = ["allow_every_method"]

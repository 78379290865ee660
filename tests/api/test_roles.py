"""The role matrix, driven by the app's own route list: every route × each role,
no key and a revoked key. A route added later is covered without editing this file,
and a route that is neither public nor guarded fails the test. The expected answers
come from DESIGN's table of roles, written out below, never from the app's guards or
`PERMISSIONS` (a wrong guard or table must fail here)."""

from __future__ import annotations

import re

import pytest

from domain.example import OPENED
from service.auth import Role
from service.http.auth import PUBLIC_PATHS

from tests.api.conftest import make_app

PATH_VALUES = {"ref": "russia-ukraine-2022", "key": "ceasefire", "name": "swagger-ui.css", "file_path": "app.js",
               "path": "openapi.json"}


ROLES = ("reader", "recorder", "auditor", "admin")
PUBLIC_PREFIXES = ("/health", "/schema", "/docs", "/static", "/favicon")


def who_may(method: str, path: str) -> set[str | None]:
    """DESIGN's roles: reader (GET statuses and timelines), recorder (reader +
    commands), auditor (reader + event log, export, verify), admin
    (everything); the dashboard, documentation, health and the public log
    (GET /ledger/..., POST /ledger/receipts) are public."""
    if path == "/" or path.startswith(PUBLIC_PREFIXES):
        return {None, "revoked", *ROLES}
    if (method == "GET" and path.startswith("/ledger")) or (method, path) == ("POST", "/ledger/receipts"):
        # the public log: checkpoints, tiles, proofs, the log's key, receipts exchanged for proofs
        return {None, "revoked", *ROLES}
    if method != "GET":
        return {"recorder", "admin"}
    if path.startswith(("/events", "/audit", "/ledger")):
        return {"auditor", "admin"}
    if path.startswith("/negotiations") or path == "/metrics":
        return set(ROLES)
    raise AssertionError(f"{method} {path} is not in DESIGN's table of roles: add it there and here")


def routes(app) -> list[tuple[str, str, str | None, str]]:
    """(method, concrete path, permission or None if public, media type) of every route."""
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                guards = [g.__name__ for layer in handler.ownership_layers for g in (layer.guards or [])]
                permissions = [g.removeprefix("requires_") for g in guards if g.startswith("requires_")]
                path = re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: PATH_VALUES.get(m[1], "1"), route.path)
                public = any(re.search(pattern, route.path) for pattern in PUBLIC_PATHS)
                assert public or permissions, f"{method} {route.path} is neither public nor guarded"
                found.append((method, path, None if public else permissions[0], str(handler.media_type)))
    return found


# The matrix sends many revoked keys from one address; the throttle is tested on its own.
@pytest.mark.parametrize("auth_failure_limit", [10_000])
async def test_role_matrix(api, client, keys):
    await api.open()
    checked = 0
    for method, path, permission, media_type in routes(client.app):
        body = {"json": OPENED} if method == "POST" else {}
        assert {r.value for r in Role} == set(ROLES)
        for role in [None, "revoked", *ROLES]:
            allowed = role in who_may(method, path)
            if allowed and "event-stream" in media_type:
                continue  # an endless stream; its denials are still checked
            response = await client.request(method, path, headers=keys.headers(role), **body)
            if allowed:
                assert response.status_code not in (401, 403), (method, path, role, response.text)
                assert response.status_code < 500, (method, path, role, response.text)
            elif role in (None, "revoked"):
                assert response.status_code == 401, (method, path, role, response.text)
                assert response.json()["type"] == "urn:parley:problem:unauthenticated"
                assert response.headers["www-authenticate"].startswith("Bearer")
            else:
                assert response.status_code == 403, (method, path, role, response.text)
                assert response.json()["type"] == "urn:parley:problem:forbidden"
            checked += 1
    assert checked > 60


@pytest.mark.parametrize("auth_failure_limit", [3])
async def test_failed_authentication_is_throttled(client):
    statuses = [
        (await client.get("/negotiations", headers={"Authorization": "Bearer pk_nope_nope"})).status_code
        for _ in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


def test_every_route_is_public_or_guarded(tmp_path):
    assert routes(make_app("postgresql://unused/db", tmp_path))

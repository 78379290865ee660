"""The dashboard's page and assets are served from the package, publicly, outside
the OpenAPI document, and reference nothing outside this origin."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import TestClient

from service.dashboard import STATIC_DIR, dashboard_route_handlers
from service.http.auth import authentication_middleware


def client() -> TestClient:
    # The real middleware: if the page needed a key, these requests would fail
    # before reaching any route (there is no runtime to authenticate against).
    app = Litestar(route_handlers=dashboard_route_handlers(), middleware=[authentication_middleware(failure_limit=10)])
    return TestClient(app)


def test_the_page_is_served_at_the_root_without_a_key_and_locks_down_its_origins() -> None:
    with client() as http:
        response = http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] == "no-referrer"
    assert 'data-testid="board"' in response.text


def test_every_asset_the_page_links_is_served_from_the_package() -> None:
    page = (STATIC_DIR / "index.html").read_text()
    scripts = "".join(path.read_text() for path in STATIC_DIR.glob("*.js"))
    linked = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', page))
    linked |= {f"/static/{name}" for name in re.findall(r'from "\./([\w.-]+\.js)"', scripts)}
    assert {"/static/app.js", "/static/style.css", "/static/board.js"} <= linked
    with client() as http:
        for path in sorted(linked):
            response = http.get(path)
            assert response.status_code == 200, path
            assert response.content, path


def test_no_asset_reaches_outside_the_origin() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r'(?:src|href)="(?:https?:)?//', text), f"{path.name} loads an external asset"
        assert "@import url(" not in text and "url(http" not in text, path.name


def test_the_dashboard_stays_out_of_the_openapi_document() -> None:
    app = Litestar(route_handlers=dashboard_route_handlers())
    assert not any(path == "/" or path.startswith("/static") for path in (app.openapi_schema.paths or {}))

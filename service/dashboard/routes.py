"""Serving the dashboard: the page at ``/`` and its assets under ``/static``.

Both paths are public (``service.http.auth.PUBLIC_PATHS``): the page itself holds
nothing secret, every datum it shows comes from the API under the visitor's key.
Neither route belongs to the API contract, so both stay out of the OpenAPI document.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.enums import MediaType
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

STATIC_DIR = Path(__file__).parent / "static"

# Everything the page needs comes from this origin; refusing the rest also keeps
# an injected script (were one ever to slip through) from sending the key away.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

# Assets change with the package, and there is no build step to fingerprint them:
# let the browser revalidate (cheap, ETag) rather than run a stale script.
REVALIDATE = CacheControlHeader(no_cache=True)


@get("/", include_in_schema=False, media_type=MediaType.HTML, cache_control=REVALIDATE, sync_to_thread=False)
def dashboard_page() -> Response[bytes]:
    return Response((STATIC_DIR / "index.html").read_bytes(), media_type=MediaType.HTML, headers=PAGE_HEADERS)


def dashboard_route_handlers() -> list[ControllerRouterHandler]:
    return [
        dashboard_page,
        create_static_files_router(
            path="/static",
            directories=[STATIC_DIR],
            name="dashboard-static",
            include_in_schema=False,
            cache_control=REVALIDATE,
        ),
    ]

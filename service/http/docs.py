"""The API reference page at /docs, offline: Swagger UI's assets come from the
swagger-ui-bundle package, never from a CDN."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from service.http import openapi

ASSETS = Path(swagger_ui_bundle.swagger_ui_path)
# Only what the page loads is served (no directory listing, no path games).
ASSET_TYPES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui-standalone-preset.js": "application/javascript",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Parley API reference</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"""

# A separate script rather than inline code, so a strict Content-Security-Policy
# (script-src 'self') holds.
INIT = """window.ui = SwaggerUIBundle({
  url: "/docs/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: "StandaloneLayout",
  validatorUrl: null
});
"""

_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


@get("/docs", include_in_schema=False, media_type="text/html", sync_to_thread=False)
def reference_page() -> Response[str]:
    return Response(PAGE, media_type="text/html; charset=utf-8", headers=_SECURITY)


@get("/docs/init.js", include_in_schema=False, sync_to_thread=False)
def reference_init() -> Response[str]:
    return Response(INIT, media_type="application/javascript", headers=_SECURITY)


@get("/docs/openapi.json", include_in_schema=False, sync_to_thread=False)
def reference_document(request: Request) -> Response[bytes]:
    """The OpenAPI document as Swagger UI 4 can render it (3.0 spelling); the
    contract is /schema/openapi.json."""
    cached = getattr(request.app.state, "docs_openapi_json", None)
    if cached is None:
        cached = openapi.encode(openapi.downgrade_to_3_0(openapi.document(request.app)))
        request.app.state.docs_openapi_json = cached
    return Response(cached, media_type="application/json")


@get("/docs/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def reference_asset(name: FromPath[str]) -> Response[bytes]:
    media_type = ASSET_TYPES.get(name)
    if media_type is None:
        raise NotFoundException(f"no asset {name!r}")
    return Response(
        (ASSETS / name).read_bytes(),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", **_SECURITY},
    )


DOCS_ROUTES = [reference_page, reference_init, reference_document, reference_asset]

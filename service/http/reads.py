"""How every read is answered: the exact bytes, an ETag of them, 304 when the client
already holds them, and a `Link: rel="next"` header on paginated lists."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.params import QueryParameter

from litestar.openapi.datastructures import ResponseSpec

# Query parameters shared by read routes (documented once, validated by Litestar).
ConsistencyToken = Annotated[
    str | None,
    QueryParameter(
        name="consistency_token",
        pattern=r"^\d{1,20}\.\d{1,20}$",
        description="From a command response: wait (up to 5 s) until the read models reflect that write; "
        "503 `consistency-timeout` if they have not by then.",
        required=False,
    ),
]
AsOf = Annotated[
    str | None,
    QueryParameter(
        name="as_of",
        max_length=40,
        description="World time: only facts that had occurred by then (ISO date, or datetime with offset). "
        "Computed from the log with the domain fold.",
        required=False,
    ),
]
KnownAt = Annotated[
    str | None,
    QueryParameter(
        name="known_at",
        max_length=40,
        description="Record time: the record as it stood then (facts recorded at or before it; a date means "
        "the end of that day, UTC). Computed from the log with the domain fold.",
        required=False,
    ),
]
Cursor = Annotated[
    str | None,
    QueryParameter(name="cursor", max_length=200, description="The `next` of the previous page.", required=False),
]
PartyCode = Annotated[
    str | None,
    QueryParameter(name="party", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,31}$", description="A party code.", required=False),
]


# The 304 of a conditional read, for the routes' documented responses.
NOT_MODIFIED = {
    304: ResponseSpec(
        data_container=None, description="Not modified: If-None-Match matched the ETag", generate_examples=False
    )
}


def entity_tag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _matches(if_none_match: str, tag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
    return any(candidate.strip().removeprefix("W/") == tag for candidate in if_none_match.split(","))


def json_read(request: Request[Any, Any, Any], body: bytes, next_cursor: str | None = None) -> Response[Any]:
    tag = entity_tag(body)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
    if next_cursor is not None:
        query = {k: v for k, v in request.query_params.items() if k != "cursor"}
        query["cursor"] = next_cursor
        headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _matches(if_none_match, tag):
        return Response(content=b"", status_code=304, headers=headers)
    return Response(content=body, media_type="application/json", headers=headers)


__all__ = [
    "NOT_MODIFIED",
    "AsOf",
    "ConsistencyToken",
    "Cursor",
    "KnownAt",
    "PartyCode",
    "entity_tag",
    "json_read",
]

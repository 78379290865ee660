"""How every read is answered: the exact bytes, an ETag of them, 304 when the client
already holds them, a `Link: rel="next"` header on paginated lists, and which
server answered (`Parley-Read-Source`) and how far behind the primary it was
(`Parley-Read-Lag`, seconds)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response
from litestar.datastructures import ResponseHeader
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter

from service.http.problems import invalid_parameter
from service.read.queries import UnknownWrite
from service.read.replicas import ReadRouter, ReadTarget
from service.store.consistency import ConsistencyToken as Token

T = TypeVar("T")

# Query parameters shared by read routes (documented once, validated by Litestar).
ConsistencyToken = Annotated[
    str | None,
    QueryParameter(
        name="consistency_token",
        max_length=100,
        description="From a command response: the read reflects at least that write. A standby answers it "
        "once it has replayed the write (waited for up to PARLEY_READ_TOKEN_WAIT, 1 s), else the primary, "
        "once its read models reflect it (up to 5 s); 503 `consistency-timeout` if they have not by then.",
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
Limit = Annotated[int, QueryParameter(name="limit", ge=1, le=500, description="Page size.")]
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


# Which server answered a read, and how far behind the primary it was.
READ_SOURCE_HEADER = "Parley-Read-Source"
READ_LAG_HEADER = "Parley-Read-Lag"
READ_HEADERS = [
    ResponseHeader(
        name=READ_SOURCE_HEADER,
        documentation_only=True,
        description="`primary`, or `standby` when a hot standby (PARLEY_READ_DATABASE_URL) answered.",
    ),
    ResponseHeader(
        name=READ_LAG_HEADER,
        documentation_only=True,
        description="Seconds since the oldest write the answering server had not replayed yet (0: caught up; "
        "always 0 for the primary). A read without a consistency token may be this stale.",
    ),
]


def served_by(target: ReadTarget) -> dict[str, str]:
    return {READ_SOURCE_HEADER: target.source, READ_LAG_HEADER: f"{target.lag:.3f}"}


def parse_token(text: str | None) -> Token | None:
    if text is None:
        return None
    try:
        return Token.parse(text)
    except ValueError:
        raise invalid_parameter(
            "consistency_token", f"{text[:40]!r} is not a consistency token (use the one a command returned)"
        ) from None


async def routed(
    reads: ReadRouter, token: str | None, read: Callable[[ReadTarget], Awaitable[T]], *, log_read: bool = False
) -> tuple[T, ReadTarget]:
    """`read` on the server the router picks for this token (service.read.replicas)."""
    try:
        return await reads.run(read, parse_token(token), log_read=log_read)
    except UnknownWrite:
        raise invalid_parameter(
            "consistency_token", "names no write recorded here (use the token a command returned)"
        ) from None


class _Versioned(msgspec.Struct):
    version: int


_VERSION = msgspec.json.Decoder(_Versioned)

# The stream a status view's ETag names: the negotiation's (`n`) or an issue's (`i.<key>`).
NEGOTIATION_STREAM = "n"


def issue_stream_tag(key: str) -> str:
    return f"i.{key}"


def entity_tag(body: bytes, stream: str | None = None) -> str:
    """A digest of the exact bytes served. A status view's tag also names its stream
    and that stream's version (`"i.ceasefire.7.<digest>"`), so that the same tag,
    sent back as `If-Match` with a command, is a precondition on that stream."""
    digest = hashlib.blake2b(body, digest_size=16).hexdigest()
    if stream is None:
        return f'"{digest}"'
    return f'"{stream}.{_VERSION.decode(body).version}.{digest}"'


def _matches(if_none_match: str, tag: str) -> bool:
    if if_none_match.strip() == "*":
        return True
    # Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
    return any(candidate.strip().removeprefix("W/") == tag for candidate in if_none_match.split(","))


def json_read(
    request: Request[Any, Any, Any],
    body: bytes,
    next_cursor: str | None = None,
    *,
    target: ReadTarget | None = None,
    stream: str | None = None,
) -> Response[Any]:
    tag = entity_tag(body, stream)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache", "Vary": "Authorization"}
    if target is not None:
        headers.update(served_by(target))
    if next_cursor is not None:
        query = {k: v for k, v in request.query_params.items() if k != "cursor"}
        query["cursor"] = next_cursor
        headers["Link"] = f'<{request.url.path}?{urlencode(query)}>; rel="next"'
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None and _matches(if_none_match, tag):
        return ReadResponse(content=b"", status_code=304, headers=headers)
    return ReadResponse(content=body, media_type="application/json", headers=headers)


class _Sent:
    """The ASGI response of a read: status, headers encoded once, body."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class ReadResponse(Response[Any]):
    """A read's bytes with its headers, sent as Litestar's `ASGIResponse` would send
    them (the same headers, in the same order, then content-type and
    content-length unless 304) but encoded in one go: Litestar's general path
    (merging every layer's headers and cookies into a header list, one header at a
    time) was some 7 % of a status read's profile. Anything to merge (a layer's headers
    or cookies, a background task) takes that general path still."""

    def to_asgi_response(self, app: Any, request: Request[Any, Any, Any], **kwargs: Any) -> Any:
        if app is not None or any(kwargs.get(k) for k in ("background", "cookies", "encoded_headers", "headers",
                                                          "is_head_response")) or self.background or self.cookies:
            return super().to_asgi_response(app, request, **kwargs)
        status = self.status_code or 200
        headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()]
        body = self.content
        if status == 304:
            body = b""
        else:
            headers.append((b"content-type", b"application/json"))
            headers.append((b"content-length", str(len(body)).encode()))
        return _Sent(status, headers, body)


__all__ = [
    "NOT_MODIFIED",
    "READ_HEADERS",
    "AsOf",
    "ConsistencyToken",
    "Cursor",
    "KnownAt",
    "PartyCode",
    "NEGOTIATION_STREAM",
    "entity_tag",
    "issue_stream_tag",
    "json_read",
    "routed",
    "served_by",
]

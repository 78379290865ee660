"""How a command request is read and answered over HTTP: its Idempotency-Key and
If-Match headers, its body (one command or a batch), and the 201 it gets."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, Response
from litestar.params import HeaderParameter

from domain.commands import Command, CommandBatch, CommonFields
from service.http.auth import current_key
from service.http.body import decode, request_digest
from service.http.problems import invalid_parameter
from service.write import requests
from service.write.idempotency import InvalidIdempotencyKey, check_key
from service.write.requests import Idempotency, Outcome

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="Makes a retry safe: the same key with the same body replays the stored response "
        "(header `Idempotent-Replayed: true`) and writes nothing; with another body: 422; while the first "
        "request is still running: 409. Scoped to the API key, kept 48 h.",
    ),
]
IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        required=False,
        description='The version of the one stream the request writes to, quoted ("7"), or *; '
        "412 when the stream is at another version.",
    ),
]

_ETAG_VERSION = re.compile(r'^(?:W/)?"(\d{1,9})"$')


def parse_if_match(header: str) -> requests.IfMatch:
    """`If-Match: "7"` (the `version` of a status view), a list of them, or `*`."""
    if header.strip() == "*":
        return requests.IfMatch(any_version=True)
    versions = set()
    for part in header.split(","):
        match = _ETAG_VERSION.match(part.strip())
        if not match:
            raise invalid_parameter(
                "If-Match", 'expected a quoted stream version such as "7", a list of them, or *', "header"
            )
        versions.add(int(match[1]))
    return requests.IfMatch(versions=frozenset(versions))


def idempotency_of(request: Request[Any, Any, Any], key: str | None, value: Any) -> Idempotency | None:
    if key is None:
        return None
    try:
        check_key(key)
    except InvalidIdempotencyKey as error:
        raise invalid_parameter("Idempotency-Key", str(error), "header") from None
    return Idempotency(current_key(request).key_id, key, request_digest(request.method, request.url.path, value))


def commands_body(body: bytes) -> tuple[list[CommonFields], bool]:
    """One command, or {"commands": [...]} (a batch); errors point into the body."""
    top_level = decode(body, dict[str, msgspec.Raw]) if body.lstrip().startswith(b"{") else {}
    if "commands" in top_level:
        return list(decode(body, CommandBatch).commands), True
    return [decode(body, Command)], False


def command_response(request: Request[Any, Any, Any], outcome: Outcome) -> Response[Any]:
    """A command's outcome as sent: 201 Created (with the Location of a new
    negotiation); a replay says so in a header."""
    headers = {"Location": outcome.location} if outcome.location else {}
    if outcome.replayed:
        headers["Idempotent-Replayed"] = "true"
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.events_appended += outcome.events_written
    return Response(content=outcome.body, status_code=201, media_type="application/json", headers=headers)

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
from service.http.metrics import EVENTS_APPENDED
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
        description="The `ETag` a status view served (GET /negotiations/{ref} or /negotiations/{ref}/issues/{key}): "
        "the request is refused with 412 `precondition-failed` (naming the stream and its `current_version`) "
        'unless that stream is still at the version the view showed; several ETags, comma-separated, name '
        'several streams. Also accepted: the bare version of the one stream the request is about, quoted ("7"), '
        "or *.",
    ),
]

_BARE_VERSION = re.compile(r'^(?:W/)?"(\d{1,9})"$')
# The ETag of a status view (service.http.reads.entity_tag): its stream, its version.
_VIEW_TAG = re.compile(r'^(?:W/)?"(?:(n)|i\.([a-z0-9][a-z0-9_-]{0,62}))\.(\d{1,9})\.[0-9a-f]{32}"$')
_IF_MATCH_FORMS = ('the ETag of a status view (GET /negotiations/{ref} or .../issues/{key}), a quoted stream '
                   'version such as "7", a list of either, or *')


def parse_if_match(header: str) -> requests.IfMatch:
    """`If-Match`: the ETags that GET /negotiations/{ref} and /issues/{key} served
    (each a precondition on its stream, whichever streams the request writes), a
    bare stream version `"7"` (the one stream the request is about), or `*`."""
    if header.strip() == "*":
        return requests.IfMatch(any_version=True)
    versions: set[int] = set()
    streams: list[tuple[str | None, int]] = []
    for part in header.split(","):
        part = part.strip()
        if bare := _BARE_VERSION.match(part):
            versions.add(int(bare[1]))
        elif tagged := _VIEW_TAG.match(part):
            streams.append((None if tagged[1] else tagged[2], int(tagged[3])))
        else:
            raise invalid_parameter("If-Match", f"{part[:80]!r} is not {_IF_MATCH_FORMS}", "header")
    if versions and streams:
        raise invalid_parameter("If-Match", "send status views' ETags or bare versions, not both", "header")
    return requests.IfMatch(versions=frozenset(versions), streams=tuple(streams), text=header.strip()[:200])


def idempotency_of(
    request: Request[Any, Any, Any], key: str | None, value: Any, *, target: str | None = None
) -> Idempotency | None:
    """The request's Idempotency-Key and fingerprint. `target` names what the path
    names once resolved (the negotiation's id for `/negotiations/{ref}/commands`), so
    a retry by id of a request sent by slug, or the reverse, is the same request."""
    if key is None:
        return None
    try:
        check_key(key)
    except InvalidIdempotencyKey as error:
        raise invalid_parameter("Idempotency-Key", str(error), "header") from None
    return Idempotency(current_key(request).key_id, key, request_digest(request.method, target or request.url.path, value))


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
    EVENTS_APPENDED.inc(outcome.events_written)
    return Response(content=outcome.body, status_code=201, media_type="application/json", headers=headers)

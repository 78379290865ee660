"""RFC 9457 problem details: every error the API answers, mapped in this one place.

Over 300 lines on purpose: it is that one place (the problem shapes, the JSON
pointers taken from msgspec's and Litestar's messages, the exception handler),
so no refusal is mapped twice or differently.

A problem's `type` is a stable URI (`urn:parley:problem:<slug>`) that clients can
switch on; `errors` lists each invalid field with a JSON pointer into the request.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal

import asyncpg
import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

log = logging.getLogger("parley.http")

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:parley:problem:"


class InvalidField(msgspec.Struct, omit_defaults=True):
    """One invalid input. A body field is named by `pointer` (RFC 6901 into the
    request body; "" = the whole body); a query, path or header parameter by
    `parameter` and `in`, with `pointer` null."""

    pointer: str | None
    detail: str
    parameter: str | None = None
    in_: Literal["query", "path", "header"] | None = msgspec.field(default=None, name="in")


def invalid_parameter(name: str, detail: str, location: Literal["query", "path", "header"] = "query") -> "ProblemError":
    """A 400 problem naming one bad parameter (e.g. `as_of`)."""
    return ProblemError(
        400,
        "invalid-parameter",
        "A parameter is not valid",
        f"{name}: {detail}",
        errors=[InvalidField(pointer=None, detail=detail, parameter=name, in_=location)],
    )


def invalid_date_parameter(name: str, detail: str, location: Literal["query", "header"] = "query") -> "ProblemError":
    """A date or datetime parameter that does not parse: 422 `invalid-date`, as in a body."""
    return ProblemError(
        422,
        "invalid-date",
        "Invalid date",
        f"{name}: {detail}",
        errors=[InvalidField(pointer=None, detail=detail, parameter=name, in_=location)],
    )


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[InvalidField] | None = None
    # Extension members, present where they help the client recover.
    current_version: int | None = None
    expected_version: int | None = None
    stream_id: str | None = None
    retry_after: int | None = None
    # Later facts that must be retracted first (retraction-blocked).
    dependants: list[str] | None = None
    # The slug that is taken (slug-taken).
    slug: str | None = None
    # A stored event this server cannot read (event-unreadable), or the one a
    # projection is stuck at (projection-stuck, with the projection's name).
    event_id: str | None = None
    negotiation_id: str | None = None
    projection: str | None = None


class ProblemError(Exception):
    """Raise anywhere in the service to answer with a problem response."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        *,
        errors: list[InvalidField] | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.problem = Problem(
            type=TYPE_PREFIX + slug, title=title, status=status, detail=detail, errors=errors, **extensions
        )
        self.headers = headers or {}


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[Problem]:
    return Response(problem, status_code=problem.status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


_PATH_IN_MESSAGE = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def json_pointer(path: str) -> str:
    """msgspec's `$.commands[0].party` → RFC 6901 `/commands/0/party`."""
    pointer = ""
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        token = part[0] or part[1]
        pointer += "/" + token.replace("~", "~0").replace("/", "~1")
    return pointer


_NAMED_FIELD = re.compile(r"^Object (?:contains unknown|missing required) field `(?P<name>[^`]+)`")


def field_from_message(message: str, *, strip_prefix: str = "") -> InvalidField:
    """An msgspec validation message as an InvalidField pointing at the field itself.

    msgspec says where the *object* is ("- at `$.commands[0]`") when a field is
    unknown or missing; the pointer names the field (`/commands/0/title`).
    `strip_prefix` drops a wrapper Litestar adds around the body (`$.data`)."""
    path = ""
    match = _PATH_IN_MESSAGE.search(message)
    if match:
        path = match["path"]
        message = message[: match.start()]
        if strip_prefix and path.startswith(strip_prefix):
            path = path[len(strip_prefix):]
    pointer = json_pointer(path)
    named = _NAMED_FIELD.match(message)
    if named:
        pointer += "/" + named["name"].replace("~", "~0").replace("/", "~1")
    return InvalidField(pointer=pointer, detail=message)


def validation_fields(exc: ValidationException) -> list[InvalidField]:
    fields = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid"))
        source = item.get("source")
        if source in ("query", "path", "header"):
            fields.append(InvalidField(pointer=None, detail=message, parameter=str(item.get("key", "")), in_=source))
        elif source == "cookie":
            fields.append(InvalidField(pointer=None, detail=message, parameter=str(item.get("key", ""))))
        else:
            fields.append(field_from_message(message))
    return fields


def _from_http_exception(exc: HTTPException) -> tuple[Problem, dict[str, str]]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException):
        fields = validation_fields(exc)
        # A query, path or header parameter is `invalid-parameter` however it is
        # wrong (Litestar's check or the route's own); a body is `invalid-request`.
        if fields and all(f.parameter is not None for f in fields):
            detail = "; ".join(f"{f.parameter}: {f.detail}" for f in fields)
            return Problem(type=TYPE_PREFIX + "invalid-parameter", title="A parameter is not valid", status=400,
                           detail=detail, errors=fields), headers
        return (
            Problem(
                type=TYPE_PREFIX + "invalid-request",
                title="The request is not valid",
                status=400,
                detail=exc.detail if exc.detail != "Validation failed" else "Some fields are not valid.",
                errors=fields or None,
            ),
            headers,
        )
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", 'Bearer realm="parley"')
        return Problem(type=TYPE_PREFIX + "unauthenticated", title="Authentication required", status=401,
                       detail=exc.detail), headers
    if isinstance(exc, PermissionDeniedException):
        return Problem(type=TYPE_PREFIX + "forbidden", title="Not allowed for this key's role", status=403,
                       detail=exc.detail), headers
    slug, title = _HTTP_STATUS_PROBLEMS.get(status, ("http-error" if status < 500 else "server-error", exc.detail))
    detail = exc.detail
    if status == 413:
        detail = f"The request body is larger than the limit of {MAX_BODY_BYTES} bytes."
    elif status == 404 and detail == "Not Found":
        detail = "No such route."
    return Problem(type=TYPE_PREFIX + slug, title=title, status=status, detail=detail), headers


# The largest request body accepted (Litestar answers 413 above it; wired in service.http.app).
MAX_BODY_BYTES = 1024 * 1024

_HTTP_STATUS_PROBLEMS = {
    400: ("bad-request", "Bad request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    429: ("too-many-requests", "Too many requests"),
}


_PROBLEM_EXTENSIONS = frozenset(Problem.__struct_fields__) - {"type", "title", "status", "detail", "instance", "errors"}


def domain_problem(exc: Any) -> Problem:
    """A domain.errors.DomainError as a problem: its code is the stable slug, its
    pointer names the field of the command that was refused."""
    extensions = {k: (str(v) if k == "stream_id" else v) for k, v in exc.extra.items() if k in _PROBLEM_EXTENSIONS}
    return Problem(
        type=TYPE_PREFIX + exc.code,
        title=exc.code.replace("-", " ").capitalize(),
        status=exc.status,
        detail=exc.detail,
        errors=[InvalidField(pointer=exc.pointer, detail=exc.detail)] if exc.pointer is not None else None,
        **extensions,
    )


def handle_exception(request: Request, exc: Exception) -> Response[Problem]:
    """The one mapping from exceptions to problem responses (registered for Exception)."""
    from domain.errors import DomainError  # domain errors carry their own status and pointer
    from service.store.event_store import ConcurrencyError

    if isinstance(exc, ProblemError):
        return problem_response(exc.problem, exc.headers)
    if isinstance(exc, DomainError):
        return problem_response(domain_problem(exc))
    from projections import records
    from projections.cursors import InvalidCursor
    from service.projection import watch
    from service.read import queries
    from service.write import idempotency
    from service.write import requests as commands

    if isinstance(exc, queries.ProjectionsBehind):
        return problem_response(
            Problem(type=TYPE_PREFIX + "consistency-timeout", title="The read models are behind the token",
                    status=503, detail=f"{exc}; retry shortly.", retry_after=1),
            {"Retry-After": "1"},
        )
    if isinstance(exc, watch.ProjectionStuck):
        stuck = exc.stuck
        return problem_response(
            Problem(type=TYPE_PREFIX + "projection-stuck", title="A read model is stuck at an event it cannot apply",
                    status=503, detail=str(exc), projection=stuck.name, event_id=str(stuck.event_id),
                    negotiation_id=str(stuck.negotiation_id))
        )
    if isinstance(exc, records.UnreadableEvent):
        log.error("%s", exc)
        return problem_response(
            Problem(type=TYPE_PREFIX + "event-unreadable", title="A stored event cannot be read by this server",
                    status=503, detail=f"{exc}; an operator must fix it (docs/operations.md).",
                    event_id=str(exc.event_id), negotiation_id=str(exc.negotiation_id), stream_id=str(exc.stream_id))
        )
    if isinstance(exc, queries.InvalidTimeParameter):
        return problem_response(invalid_date_parameter(exc.parameter, str(exc)).problem)
    if isinstance(exc, InvalidCursor):
        return problem_response(invalid_parameter("cursor", f"not a cursor this list issued ({exc})").problem)

    if isinstance(exc, commands.SlugTaken):
        return problem_response(
            Problem(type=TYPE_PREFIX + "slug-taken", title="The slug is taken", status=409, detail=str(exc),
                    errors=[InvalidField(pointer="/slug", detail=str(exc))], slug=exc.slug)
        )
    if isinstance(exc, commands.PreconditionFailed):
        return problem_response(
            Problem(type=TYPE_PREFIX + "precondition-failed", title="If-Match does not match the stream version",
                    status=412, detail=str(exc), current_version=exc.current, stream_id=str(exc.stream_id),
                    errors=[InvalidField(pointer=None, detail=str(exc), parameter="If-Match", in_="header")])
        )
    if isinstance(exc, commands.PreconditionNotApplicable):
        detail = f"{exc}; send expected_version per command instead."
        return problem_response(
            Problem(type=TYPE_PREFIX + "invalid-parameter", title="A parameter is not valid", status=400,
                    detail=detail,
                    errors=[InvalidField(pointer=None, detail=detail, parameter="If-Match", in_="header")])
        )
    if isinstance(exc, idempotency.IdempotencyKeyInUse):
        return problem_response(
            Problem(type=TYPE_PREFIX + "idempotency-key-in-use", title="The Idempotency-Key is in use", status=409,
                    detail="A request with this Idempotency-Key is still being processed; retry shortly.",
                    retry_after=1),
            {"Retry-After": "1"},
        )
    if isinstance(exc, idempotency.IdempotencyKeyReused):
        detail = "This Idempotency-Key was used with another request; use a new key for a new request."
        return problem_response(
            Problem(type=TYPE_PREFIX + "idempotency-key-reused", title="The Idempotency-Key was used for another request",
                    status=422, detail=detail,
                    errors=[InvalidField(pointer=None, detail=detail, parameter="Idempotency-Key", in_="header")])
        )
    if isinstance(exc, ConcurrencyError):
        return problem_response(
            Problem(
                type=TYPE_PREFIX + "version-conflict",
                title="The stream is not at the expected version",
                status=409,
                detail=str(exc),
                current_version=exc.actual,
                expected_version=exc.expected,
                stream_id=str(exc.stream_id),
            )
        )
    if isinstance(exc, HTTPException):
        problem, headers = _from_http_exception(exc)
        return problem_response(problem, headers)
    if isinstance(exc, (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)):
        # Bodies are checked for NUL before any write; a path or query parameter
        # (`/negotiations/x%00`) reaches a query as text PostgreSQL cannot hold.
        detail = "A parameter contains a character PostgreSQL cannot store (such as NUL, U+0000)."
        return problem_response(
            Problem(type=TYPE_PREFIX + "invalid-parameter", title="A parameter is not valid", status=400,
                    detail=detail)
        )
    # OperatorInterventionError: the server is shutting down or starting (57P01-57P03);
    # InternalClientError: asyncpg's state when the connection broke mid-query.
    if isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, ConnectionError, OSError,
                        asyncpg.exceptions.InterfaceError, TimeoutError, asyncpg.exceptions.OperatorInterventionError,
                        asyncpg.exceptions.InternalClientError)):
        log.warning("database unavailable: %r", exc)
        return problem_response(
            Problem(type=TYPE_PREFIX + "unavailable", title="The database is unavailable", status=503,
                    detail="Try again shortly.", retry_after=2),
            {"Retry-After": "2"},
        )
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return problem_response(
        Problem(type=TYPE_PREFIX + "server-error", title="Internal server error",
                status=HTTP_500_INTERNAL_SERVER_ERROR, detail="The error was logged.")
    )


# Documented error responses for route decorators: `responses=problem_responses(404, 409)`.
def problem_responses(*statuses: int) -> dict[int, Any]:
    from litestar.openapi.datastructures import ResponseSpec

    descriptions = {
        400: "Invalid request (problem details with a JSON pointer per invalid field)",
        401: "Missing or unknown API key",
        403: "The key's role does not allow this",
        404: "Not found",
        409: "Conflict: expected_version mismatch (carries current_version), a taken slug, "
        "a rule about the current state, or an Idempotency-Key still in use",
        412: "Precondition failed (If-Match does not match the current version)",
        413: "Request body too large",
        415: "Unsupported media type",
        422: "The request is well-formed but breaks a domain rule, or reuses an Idempotency-Key with another body",
        428: "Precondition required",
        429: "Too many requests: too many failed authentications from this address (a valid key is never "
        "refused), or too many open streams; Retry-After says when to retry",
        503: "Unavailable: the database (retry), a read model stuck at an event it cannot apply "
        "(projection-stuck), or a stored event this server cannot read (event-unreadable)",
    }
    if 401 in statuses and 429 not in statuses:
        # Any route that takes a key may answer 429 to an address that failed too often.
        statuses = (*statuses, 429)
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=descriptions[status],
            media_type=PROBLEM_MEDIA_TYPE,
            generate_examples=False,
        )
        for status in statuses
    }


__all__ = [
    "MAX_BODY_BYTES",
    "InvalidField",
    "domain_problem",
    "field_from_message",
    "invalid_date_parameter",
    "invalid_parameter",
    "Problem",
    "ProblemError",
    "handle_exception",
    "json_pointer",
    "problem_response",
    "problem_responses",
]

"""RFC 9457 problem details: every error the API answers, mapped in this one place.

A problem's `type` is a stable URI (`urn:parley:problem:<slug>`) that clients can
switch on; `errors` lists each invalid field with a JSON pointer into the request.
"""

from __future__ import annotations

import logging
import re
from typing import Any

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


class InvalidField(msgspec.Struct):
    pointer: str  # JSON pointer into the request body ("" = the whole body), or a parameter name
    detail: str


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


def validation_fields(exc: ValidationException) -> list[InvalidField]:
    fields = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid"))
        match = _PATH_IN_MESSAGE.search(message)
        if match:
            fields.append(InvalidField(pointer=json_pointer(match["path"]), detail=message[: match.start()]))
        elif item.get("source") in ("query", "path", "header", "cookie"):
            fields.append(InvalidField(pointer=str(item.get("key", "")), detail=message))
        else:
            fields.append(InvalidField(pointer="", detail=message))
    return fields


def _from_http_exception(exc: HTTPException) -> tuple[Problem, dict[str, str]]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException):
        return (
            Problem(
                type=TYPE_PREFIX + "invalid-request",
                title="The request is not valid",
                status=400,
                detail=exc.detail if exc.detail != "Validation failed" else "Some fields are not valid.",
                errors=validation_fields(exc) or None,
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
    slugs = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large",
             415: "unsupported-media-type", 429: "too-many-requests"}
    slug = slugs.get(status, "http-error" if status < 500 else "server-error")
    title = {404: "Not found", 405: "Method not allowed", 413: "Request body too large",
             415: "Unsupported media type", 429: "Too many requests"}.get(status, exc.detail)
    return Problem(type=TYPE_PREFIX + slug, title=title, status=status, detail=exc.detail), headers


def handle_exception(request: Request, exc: Exception) -> Response[Problem]:
    """The one mapping from exceptions to problem responses (registered for Exception)."""
    from domain.errors import DomainError  # domain errors carry their own status and pointer
    from service.store import ConcurrencyError

    if isinstance(exc, ProblemError):
        return problem_response(exc.problem, exc.headers)
    if isinstance(exc, DomainError):
        return problem_response(
            Problem(
                type=TYPE_PREFIX + exc.code,
                title=type(exc).__name__,
                status=exc.status,
                detail=exc.detail,
                errors=[InvalidField(pointer=exc.pointer, detail=exc.detail)] if exc.pointer is not None else None,
            )
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
    if isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError, ConnectionError, OSError,
                        asyncpg.exceptions.InterfaceError, TimeoutError)):
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
        409: "Conflict (e.g. expected version mismatch; carries current_version)",
        412: "Precondition failed (If-Match does not match the current version)",
        413: "Request body too large",
        415: "Unsupported media type",
        422: "The request is well-formed but breaks a rule",
        428: "Precondition required",
        429: "Too many requests",
        503: "Database unavailable",
    }
    return {
        status: ResponseSpec(data_container=Problem, description=descriptions[status], media_type=PROBLEM_MEDIA_TYPE)
        for status in statuses
    }


__all__ = [
    "InvalidField",
    "Problem",
    "ProblemError",
    "handle_exception",
    "json_pointer",
    "problem_response",
    "problem_responses",
]

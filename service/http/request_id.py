"""A request id for every routed request: the `X-Request-Id` response header, the
`request_id` of every log line written while the request runs, and the
`correlation_id` of every event it writes (docs/operations.md, "Request ids").

The id is a UUID because `correlation_id` is one (a uuid column, hashed into the
event). An incoming `X-Request-Id` that is a UUID (canonical 36 characters, or the
32 hex digits of nginx's `$request_id`) is kept, in canonical lowercase form, so a
proxy's or client's id reaches the events; anything else is ignored and a fresh
UUID4 is generated (a free-text id could not be stored, and is not echoed back).
The same incoming id on several requests is how a client ties them together: their
events then share the correlation id. The API takes no correlation id in request
bodies (request Structs forbid unknown fields), so the header is the only way.

A replayed command (Idempotency-Key) answers with the events of the first
request: their correlation id is that request's id, not the replay's.

Litestar runs app middleware after routing: a path that no route serves (404
before any handler) gets no request id. It writes nothing either.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from typing import Any

from litestar import Request
from litestar.datastructures import ResponseHeader
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.http import tracing

HEADER = "X-Request-Id"
_HEADER_KEY = b"x-request-id"
_STATE_KEY = "parley_request_id"
_UUID = re.compile(rb"^(?:[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")

# The id of the request this task is answering (None outside a request): log
# lines take it from here (service.logs).
current: contextvars.ContextVar[str | None] = contextvars.ContextVar("parley_request_id", default=None)

# Documented on every operation (Litestar's app-level response_headers).
RESPONSE_HEADER = ResponseHeader(
    name=HEADER,
    documentation_only=True,
    required=True,
    description="This request's id (a UUID): the incoming X-Request-Id when it is a UUID, else a new one. "
    "The events the request writes carry it as their `correlation_id`; log lines carry it as `request_id`.",
)

access_log = logging.getLogger("parley.http")


def incoming(value: bytes | None) -> uuid.UUID | None:
    """The id an incoming X-Request-Id names, if it is a UUID."""
    if value is None or not _UUID.match(value.strip()):
        return None
    return uuid.UUID(value.strip().decode("ascii"))


def request_id_of(request: Request[Any, Any, Any]) -> uuid.UUID | None:
    """The request's id (None when the middleware did not run, e.g. an app built
    without it)."""
    return request.scope.get("state", {}).get(_STATE_KEY)


def request_id_middleware(app: ASGIApp, *, refusals_answered_inside: bool = False) -> ASGIApp:
    """Names the request, answers with its id, and logs one line when it ends
    (logger `parley.http`, INFO: method, route, status, duration).

    What runs inside is wrapped in Litestar's exception handling, as Litestar wraps
    a route's handler: a refusal raised by a later middleware (authentication's
    401) becomes its problem response here, through `answer`, so it too carries
    the id and is logged with the status it was sent with. With
    `refusals_answered_inside` the next layer does that already (the app's metrics
    middleware, service.http.metrics), and a second wrapping would only cost time."""
    from litestar._asgi.utils import wrap_in_exception_handler

    inner = app if refusals_answered_inside else wrap_in_exception_handler(app)

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == _HEADER_KEY), None)
        request_id = incoming(given) or uuid.uuid4()
        text = str(request_id)
        scope.setdefault("state", {})[_STATE_KEY] = request_id
        token = current.set(text)
        tracing.routed(scope, text)
        started = time.perf_counter()
        status = 500

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER_KEY]
                headers.append((_HEADER_KEY, text.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await inner(scope, receive, answer)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d",
                    scope["method"],
                    scope["path"],
                    status,
                    extra={
                        "request_id": text,
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": scope.get("path_template"),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        **({"trace_id": traced} if (traced := tracing.trace_id()) else {}),
                    },
                )
            current.reset(token)

    return middleware

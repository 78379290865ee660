"""Auditor routes over the global log: `GET /events` (pages) and `GET /events/stream`
(Server-Sent Events). Both follow the gap-free commit order of service.audit.log.

The cursor is the `checkpoint` token of the last event a client has ("txid.position"):
the page after it, or the stream after it, misses nothing and repeats nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from domain.errors import UnknownNegotiation
from domain.vocabulary import SLUG_PATTERN
from service.auth import Permission
from service.store.envelope import EventEnvelope, envelope
from service.http.auth import requires
from service.http.problems import invalid_date_parameter, invalid_parameter, problem_responses
from service.http.reads import READ_HEADERS, served_by
from service.http.streams import StreamHandle, registry_of
from service.read.replicas import ReadRouter, ReadTarget
from service.store.event_store import EVERYTHING, START, Checkpoint, LogFilter, StoredEvent

# A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
# How often an idle stream looks for new events (no connection is held meanwhile).
POLL_SECONDS = 0.5


class EventList(msgspec.Struct):
    items: list[EventEnvelope]
    # The cursor of the next page, or null when this page reached the head of the
    # log; the last item's `checkpoint` resumes later, when more has been recorded.
    next: str | None


NegotiationFilter = Annotated[
    str | None,
    QueryParameter(name="negotiation", required=False, max_length=100,
                   description="Only this negotiation's events (its id or slug; 404 for an unknown one)."),
]
StreamFilter = Annotated[uuid.UUID | None, QueryParameter(name="stream", required=False, description="Only this stream.")]
TypeFilter = Annotated[
    list[str] | None,
    QueryParameter(name="type", required=False, description="Only these event types (repeat the parameter for several)."),
]
RecordedAfter = Annotated[
    str | None,
    QueryParameter(name="recorded_after", required=False, max_length=40,
                   description="Recorded at or after this instant (ISO 8601 with offset, e.g. 2022-03-16T00:00:00Z; "
                   "422 `invalid-date` otherwise)."),
]
RecordedBefore = Annotated[
    str | None,
    QueryParameter(name="recorded_before", required=False, max_length=40,
                   description="Recorded strictly before this instant (ISO 8601 with offset; 422 `invalid-date` "
                   "otherwise)."),
]
LogCursor = Annotated[
    str | None,
    QueryParameter(
        name="cursor", required=False, description="Opaque: `next` of the previous page, or an event's `checkpoint`."
    ),
]
LogLimit = Annotated[int, QueryParameter(name="limit", ge=1, le=1000, description="Page size.")]
LastEventId = Annotated[
    str | None,
    HeaderParameter(name="Last-Event-ID", required=False, description="Resume after this event (sent by EventSource)."),
]
After = Annotated[
    str | None,
    QueryParameter(name="after", required=False, description="Start after this `checkpoint` (default: the beginning)."),
]


def parse_cursor(token: str | None, name: str, location: Any = "query") -> Checkpoint:
    if token is None or token == "":
        return START
    try:
        checkpoint = Checkpoint.parse(token)
    except ValueError:
        raise invalid_parameter(name, "not a cursor this server issued", location) from None
    # Both parts are read back as bigint: a larger number names no place in the log.
    if max(checkpoint.txid, checkpoint.position) >= 2**63:
        raise invalid_parameter(name, "not a cursor this server issued", location)
    return checkpoint


def _instant(name: str, text: str | None) -> dt.datetime | None:
    """A record-time bound: an ISO 8601 datetime with its offset, nothing else."""
    if text is None:
        return None
    # A "+02:00" offset left unencoded in a query string arrives as " 02:00".
    text = text.strip().replace(" ", "+")
    if not _DATETIME.match(text):
        if _DATE_ONLY.match(text):
            detail = f"{text!r} is a day, not an instant: write e.g. {text}T00:00:00Z."
        else:
            detail = f"{text!r} is not an ISO 8601 datetime with offset: write e.g. 2022-03-16T00:00:00Z."
        raise invalid_date_parameter(name, detail)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        moment.astimezone(dt.timezone.utc)  # what PostgreSQL is sent
    except ValueError as error:
        raise invalid_date_parameter(name, f"{text!r} is not a real time ({error}): write e.g. "
                                     "2022-03-16T00:00:00Z.") from None
    except OverflowError:
        raise invalid_date_parameter(name, f"{text!r} is out of range: the instant in UTC must fall within "
                                     "years 1-9999, e.g. 2022-03-16T00:00:00Z.") from None
    return moment


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _filter(
    negotiation: uuid.UUID | None,
    stream: uuid.UUID | None,
    types: list[str] | None,
    recorded_after: str | None = None,
    recorded_before: str | None = None,
) -> LogFilter:
    return LogFilter(
        negotiation_id=negotiation,
        stream_id=stream,
        types=tuple(types or ()),
        recorded_after=_instant("recorded_after", recorded_after),
        recorded_before=_instant("recorded_before", recorded_before),
    )


def _next_link(request: Request[Any, Any, Any], cursor: str) -> str:
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    query.append(("cursor", cursor))
    return f'<{request.url.path}?{urlencode(query)}>; rel="next"'


_encoder = msgspec.json.Encoder()


class EventsController(Controller):
    path = "/events"
    tags = ["audit"]
    guards = [requires(Permission.AUDIT)]

    @get(
        "/",
        operation_id="listEvents",
        summary="The global log in commit order, gap-free (auditor)",
        description="Cursor-paginated; `Link: <…>; rel=\"next\"` while a page is full. Every event, "
        "corrections included: a retraction (`record.retracted`) or a dispute (`claim.disputed`) is an "
        "event of its own whose `data.event_id` names the event it corrects.",
        responses=problem_responses(400, 401, 403),
        response_headers=READ_HEADERS,
    )
    async def list_events(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[ReadRouter],
        cursor: LogCursor = None,
        limit: LogLimit = 100,
        negotiation: NegotiationFilter = None,
        stream: StreamFilter = None,
        types: TypeFilter = None,
        recorded_after: RecordedAfter = None,
        recorded_before: RecordedBefore = None,
    ) -> Response[EventList]:
        where = _filter(None, stream, types, recorded_after, recorded_before)
        after = parse_cursor(cursor, "cursor")

        async def read(target: ReadTarget) -> list[StoredEvent]:
            named = await negotiation_filter(target, negotiation)
            return await target.store.read_filtered(
                after, limit, msgspec.structs.replace(where, negotiation_id=named), serve_damaged=True
            )

        page, target = await reads.run(read)
        next_cursor = page[-1].checkpoint.token() if len(page) == limit else None
        headers = {"Cache-Control": "no-store", **served_by(target)}
        if next_cursor is not None:
            headers["Link"] = _next_link(request, next_cursor)
        body = _encoder.encode(EventList(items=[envelope(e) for e in page], next=next_cursor))
        return Response(content=body, media_type="application/json", headers=headers)

    @get(
        "/stream",
        operation_id="streamEvents",
        summary="New events as Server-Sent Events, resumable with Last-Event-ID (auditor)",
        description="Each message's `id` is the event's `checkpoint` and its `data` the event (JSON). "
        "Reconnecting with `Last-Event-ID` (EventSource does it by itself) resumes with no gap and no "
        f"duplicate. A `: keep-alive` comment comes every {KEEPALIVE_SECONDS:.0f} s when nothing happens.",
        media_type="text/event-stream",
        responses=problem_responses(400, 401, 403, 429),
        response_headers=READ_HEADERS,
    )
    async def stream_events(
        self,
        request: Request,
        reads: NamedDependency[ReadRouter],
        last_event_id: LastEventId = None,
        after: After = None,
        negotiation: NegotiationFilter = None,
        stream: StreamFilter = None,
        types: TypeFilter = None,
    ) -> ServerSentEvent:
        # Last-Event-ID wins: it is what a reconnecting EventSource knows best.
        if last_event_id:
            start = parse_cursor(last_event_id, "Last-Event-ID", "header")
        else:
            start = parse_cursor(after, "after")
        # The headers say where the stream starts; each poll picks its server again.
        first = await reads.choose()
        where = _filter(await negotiation_filter(first, negotiation), stream, types)
        # Counted against the caps, and ended when its key is revoked (service.http.streams).
        handle = await registry_of(request.app.state).open(request.user.key_id)
        try:
            return ServerSentEvent(_follow(reads, start, where, handle), headers={"Cache-Control": "no-store", **served_by(first)})
        except BaseException:
            handle.release()
            raise



# A filter naming no negotiation matches no event (no negotiation has the nil id).
_NO_NEGOTIATION = uuid.UUID(int=0)


async def negotiation_filter(target: ReadTarget, ref: str | None) -> uuid.UUID | None:
    """The negotiation a filter names, by id or slug as every other route takes it.
    A filter is a filter: one that names no negotiation matches nothing (an empty
    page), whether it is an unknown id or an unknown slug; anything that is neither
    an id nor a slug is a 400."""
    if ref is None:
        return None
    try:
        return uuid.UUID(ref)
    except ValueError:
        pass
    if not _SLUG.match(ref):
        raise invalid_parameter("negotiation", f"{ref[:40]!r} is neither a negotiation id nor a slug")
    try:
        return await target.queries.resolve_negotiation(ref)
    except UnknownNegotiation:
        return _NO_NEGOTIATION


_SLUG = re.compile(SLUG_PATTERN)


async def _follow(
    reads: ReadRouter, after: Checkpoint, where: LogFilter, handle: StreamHandle
) -> AsyncIterator[ServerSentEventMessage]:
    try:
        async for message in _events_after(reads, after, where, handle):
            yield message
    finally:
        handle.release()


async def _events_after(
    reads: ReadRouter, after: Checkpoint, where: LogFilter, handle: StreamHandle
) -> AsyncIterator[ServerSentEventMessage]:
    """Events after `after`, for as long as the client listens.

    Each poll may be answered by another server (a standby, the primary after it
    failed): every server's gap-free log is a prefix of the same commit order, so a
    server behind `after` only has nothing new yet; nothing is skipped or repeated."""
    quiet_since = time.monotonic()
    filtered = where != EVERYTHING

    async def poll(target: ReadTarget) -> tuple[Checkpoint | None, list[StoredEvent]]:
        # With a filter, remember how far the log was scanned, not only the last match,
        # so an idle filtered stream does not rescan everything after its last event.
        head = await target.store.head() if filtered else None
        return head, await target.store.read_filtered(after, 200, where, until=head, serve_damaged=True)

    while True:
        if handle.ended.is_set():
            yield ServerSentEventMessage(event="revoked", data="the API key of this stream was revoked")
            return
        (head, page), _ = await reads.run(poll)
        for event in page:
            yield ServerSentEventMessage(data=_encoder.encode(envelope(event)).decode(), id=event.checkpoint.token())
        if page:
            after = page[-1].checkpoint
            quiet_since = time.monotonic()
            if len(page) == 200:
                continue
        if head is not None and head > after:
            after = head
        if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            yield ServerSentEventMessage(comment="keep-alive", data=None)
            quiet_since = time.monotonic()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(handle.ended.wait(), POLL_SECONDS)

"""Auditor routes over the global log: `GET /events` (pages) and `GET /events/stream`
(Server-Sent Events). Both follow the gap-free commit order of service.audit.log.

The cursor is the `checkpoint` token of the last event a client has ("txid.position"):
the page after it, or the stream after it, misses nothing and repeats nothing. The
cursor and the filters are read by service.http.log_filters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage

from service.auth import Permission
from service.store.envelope import EventEnvelope, envelope
from service.http.auth import requires
from service.http.log_filters import (
    After,
    LastEventId,
    LogCursor,
    LogLimit,
    NegotiationFilter,
    RecordedAfter,
    RecordedBefore,
    StreamFilter,
    TypeFilter,
    log_filter,
    negotiation_filter,
    parse_cursor,
)
from service.http.problems import problem_responses
from service.http.reads import READ_HEADERS, served_by
from service.http.streams import StreamHandle, registry_of
from service.read.replicas import ReadRouter, ReadTarget
from service.store.event_store import EVERYTHING, Checkpoint, LogFilter, StoredEvent

# A comment line this often keeps proxies from closing an idle stream.
KEEPALIVE_SECONDS = 15.0
# How often an idle stream looks for new events (no connection is held meanwhile).
POLL_SECONDS = 0.5


class EventList(msgspec.Struct):
    items: list[EventEnvelope]
    # The cursor of the next page, or null when this page reached the head of the
    # log; the last item's `checkpoint` resumes later, when more has been recorded.
    next: str | None


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
        responses=problem_responses(400, 401, 403, 404),
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
        where = log_filter(None, stream, types, recorded_after, recorded_before)
        after = parse_cursor(cursor, "cursor")

        async def read(target: ReadTarget) -> list[StoredEvent]:
            named = await negotiation_filter(reads, target, negotiation)
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
        responses=problem_responses(400, 401, 403, 404, 429),
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
        where = log_filter(await negotiation_filter(reads, first, negotiation), stream, types)
        # Counted against the caps, and ended when its key is revoked (service.http.streams).
        handle = await registry_of(request.app.state).open(request.user.key_id)
        try:
            return ServerSentEvent(_follow(reads, start, where, handle), headers={"Cache-Control": "no-store", **served_by(first)})
        except BaseException:
            handle.release()
            raise



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

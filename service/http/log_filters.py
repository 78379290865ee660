"""What a client may say about which part of the global log it wants, read and
checked for `GET /events`, `GET /events/stream` and the export (service.http.audit):
the cursor, the filters (negotiation by id or slug, stream, types, record-time
bounds) and their query parameters. A value that is not well formed is a 400 or
422 problem naming its parameter; a negotiation that does not exist is a 404.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any

from litestar.params import HeaderParameter, QueryParameter

from domain.errors import UnknownNegotiation
from domain.vocabulary import SLUG_PATTERN
from service.http.problems import invalid_date_parameter, invalid_parameter
from service.read.replicas import PRIMARY, ReadRouter, ReadTarget
from service.store.event_store import START, Checkpoint, LogFilter

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


def log_filter(
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


async def negotiation_filter(reads: ReadRouter, target: ReadTarget, ref: str | None) -> uuid.UUID | None:
    """The negotiation a filter names, by id or slug as every other route takes it.
    One that names no negotiation is the 404 `unknown-negotiation` of every route
    (never an empty page, which would look like a negotiation with no events);
    anything that is neither an id nor a slug is a 400. A negotiation that exists
    but has no event in the page is an empty page."""
    if ref is None:
        return None
    try:
        uuid.UUID(ref)
    except ValueError:
        if not _SLUG.match(ref):
            raise invalid_parameter("negotiation", f"{ref[:40]!r} is neither a negotiation id nor a slug") from None
    try:
        return await target.queries.resolve_negotiation(ref)
    except UnknownNegotiation:
        if target.source == PRIMARY:
            raise
    # A standby is read without a token however far behind it is (up to its max lag):
    # one that has not replayed an opening yet must not deny the negotiation. The
    # primary says whether it exists; the standby's page is then empty, as its lag says.
    return await reads.primary.queries.resolve_negotiation(ref)


_SLUG = re.compile(SLUG_PATTERN)

"""The append's body in pieces (service.store.append.body_pieces): the server
finishes a body from the writer's two pieces, its record time and its version
(migration 0060); the result must be byte for byte the canonical body that the
audits and the independent verifier recompute."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from service.store.append import body_pieces, canonical_body
from service.store.canonical import ImportClaim, timestamp_text
from service.store.event_store import PendingEvent

text = st.text(max_size=12)
maybe = lambda strategy: st.none() | strategy  # noqa: E731
json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)

events = st.builds(
    PendingEvent,
    id=st.uuids(),
    stream_id=st.uuids(),
    stream_type=st.sampled_from(["issue", "negotiation"]),
    type=text,
    schema_version=st.integers(1, 9),
    occurred_on=text,
    recorded_by=text,
    negotiation_id=maybe(st.uuids()),
    claimed_by=st.lists(text, max_size=3).map(tuple),
    # keys that collide with the body's own, inside the data and the source
    source=maybe(st.dictionaries(st.sampled_from(["recorded_at", "version", "outlet", "note"]), json_value, max_size=3)),
    note=maybe(text),
    correlation_id=maybe(st.uuids()),
    causation_id=maybe(st.uuids()),
    import_claim=maybe(st.builds(ImportClaim, hash=text, recorded_at=text, recorded_by=text)),
    data=st.dictionaries(st.sampled_from(["recorded_at", "version", "n", "issue"]), json_value, max_size=4).map(
        msgspec.json.encode
    ),
)


@settings(max_examples=300, deadline=None)
@given(event=events, version=st.integers(1, 2**31 - 1), micros=st.integers(0, 10**15))
def test_head_time_tail_version_is_the_canonical_body(event: PendingEvent, version: int, micros: int) -> None:
    moment = dt.datetime(1990, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=micros)
    head, tail = body_pieces(event)
    finished = head + timestamp_text(moment).encode() + tail + str(version).encode() + b"}"
    assert finished == canonical_body(event, version, moment)


def test_the_pieces_leave_out_exactly_the_time_and_the_version() -> None:
    event = PendingEvent(
        id=uuid.UUID(int=1), stream_id=uuid.UUID(int=2), stream_type="issue", type="issue.discussed",
        schema_version=1, occurred_on="2022-03-10", recorded_by="test", data=b'{"n":1}',
    )  # fmt: skip
    head, tail = body_pieces(event)
    assert head.endswith(b'"occurred_on":"2022-03-10","recorded_at":"')
    assert tail == b'","recorded_by":"test","schema_version":1,"stream_id":"00000000-0000-0000-0000-000000000002",' \
        b'"stream_type":"issue","type":"issue.discussed","version":'

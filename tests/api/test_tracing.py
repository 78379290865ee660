"""Traces (service.tracing): one command's trace, caught by the OpenTelemetry SDK's
in-memory exporter from the real app on a real database — the request's server
span, with the SQL and the domain spans inside it, in order; and tracing off
installs nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from litestar.testing import AsyncTestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from domain.example import COMMANDS, OPENED
from service import tracing
from tests.api.conftest import make_app


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    caught = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(caught))
    tracing.use(provider)
    try:
        yield caught
    finally:
        tracing.reset()
        provider.shutdown()


def _trace_of(spans: tuple[ReadableSpan, ...], root: ReadableSpan) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.context.trace_id == root.context.trace_id), key=lambda s: s.start_time)


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_one_commands_trace_holds_its_sql_and_domain_spans_in_order(
    database_url, tmp_path, keys, exporter, caplog
):
    caplog.set_level(logging.INFO, "parley.http")
    async with AsyncTestClient(make_app(database_url, tmp_path)) as client:
        opened = await client.post("/negotiations", json=OPENED, headers=keys.headers("recorder"))
        assert opened.status_code == 201, opened.text
        request_id = str(uuid.uuid4())
        recorded = await client.post(
            f"/negotiations/{opened.json()['negotiation_id']}/commands",
            json={"commands": COMMANDS[:2]},
            headers=keys.headers("recorder", **{"X-Request-Id": request_id}),
        )
        assert recorded.status_code == 201, recorded.text
    spans = exporter.get_finished_spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER and s.attributes.get("parley.request_id") == request_id]
    assert server.name == "POST /negotiations/{ref}/commands"
    assert server.attributes["http.route"] == "/negotiations/{ref}/commands"
    assert server.attributes["http.status_code"] == 201
    assert server.parent is None
    # The request's log line names the trace.
    [line] = [r for r in caplog.records if r.name == "parley.http" and getattr(r, "request_id", None) == request_id]
    assert line.trace_id == format(server.context.trace_id, "032x")

    mine = _trace_of(spans, server)
    by_id = {s.context.span_id: s for s in mine}
    # Everything in the trace hangs off the request's span, and lies within it.
    for span in mine[1:]:
        assert _ancestors(span, by_id)[-1] == server.name, span.name
        assert server.start_time <= span.start_time <= span.end_time <= server.end_time, span.name

    sql = [s for s in mine if s.kind is SpanKind.CLIENT and s.attributes.get("db.system") == "postgresql"]
    decides = [s for s in mine if s.name == "parley.decide"]
    [append] = [s for s in mine if s.name == "parley.append"]
    # One decide per command, in the batch's order, each straight under the request.
    assert [(d.attributes["parley.command"], d.attributes["parley.index"]) for d in decides] == [
        (COMMANDS[0]["type"], 0), (COMMANDS[1]["type"], 1)
    ]
    assert all(d.parent.span_id == server.context.span_id for d in decides)
    assert append.attributes["parley.events"] == len(recorded.json()["events"])
    # The append's own statement (parley_append) is inside the append span.
    [appending] = [s for s in sql if s.parent.span_id == append.context.span_id]
    assert "parley_append" in appending.attributes["db.statement"]
    # In order: the transaction begins, the streams are read, each command is
    # decided, the events appended and the transaction committed at once (the
    # first attempt needs no savepoint: nothing before it to keep; the append,
    # which takes the transaction's id, is its last statement before COMMIT), and
    # only then are the readers woken (after the commit, not in it).
    def step(span: ReadableSpan) -> str | None:
        if span.name.startswith("parley."):
            return span.name
        text = span.attributes.get("db.statement", "")
        for marker, label in (("BEGIN", "BEGIN"), ("SAVEPOINT", "SAVEPOINT"), ("parley_append", "append SQL"),
                              ("RELEASE SAVEPOINT", "RELEASE"), ("COMMIT", "COMMIT"), ("pg_notify", "wake"),
                              ("FROM events", "read events")):  # fmt: skip
            if text.lstrip().startswith(marker) or (marker in ("parley_append", "pg_notify", "FROM events") and marker in text):
                return label
        return None

    steps = [label for label in map(step, mine) if label is not None]
    collapsed = [label for i, label in enumerate(steps) if label != "read events" or steps[i - 1] != label]
    assert collapsed == [
        "BEGIN", "read events", "parley.decide", "parley.decide", "parley.append", "append SQL", "COMMIT", "wake",
    ], steps  # fmt: skip
    assert decides[-1].end_time <= append.start_time <= appending.start_time <= appending.end_time <= append.end_time


async def test_projection_batches_and_seals_are_traced_in_their_own_traces(database_url, tmp_path, keys, exporter):
    async with AsyncTestClient(make_app(database_url, tmp_path)) as client:
        opened = await client.post("/negotiations", json=OPENED, headers=keys.headers("recorder"))
        assert opened.status_code == 201, opened.text
        token = opened.json()["consistency_token"]
        # Read-your-writes: the projections have applied the event once this answers.
        ref = opened.json()["negotiation_id"]
        read = await client.get(f"/negotiations/{ref}", params={"consistency_token": token},
                                headers=keys.headers("reader"))  # fmt: skip
        assert read.status_code == 200, read.text
        await tracing_seal(client, keys)
    spans = exporter.get_finished_spans()
    batches = [s for s in spans if s.name == "parley.projection.batch"]
    assert {s.attributes["parley.projection"] for s in batches} >= {"negotiation_summary"}
    assert all(s.parent is None for s in batches), "a batch is a trace of its own"
    by_id = {s.context.span_id: s for s in spans}
    batch_sql = [s for s in spans if s.parent is not None and by_id.get(s.parent.span_id) in batches]
    assert batch_sql, "the batch's statements are inside it"
    seals = [s for s in spans if s.name == "parley.seal"]
    assert seals and all(s.parent is None for s in seals)


async def tracing_seal(client, keys) -> None:
    """Until a sealing round has ended (the sealer runs every second)."""
    import asyncio

    for _ in range(300):
        response = await client.get("/ledger/checkpoint", headers=keys.headers("auditor"))
        if response.status_code == 200:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("no checkpoint within 30 s")


async def test_tracing_off_installs_nothing(database_url, tmp_path):
    assert tracing.provider() is None
    assert tracing.configure({}) is False
    assert tracing.configure({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}) is False
    assert tracing.provider() is None
    app = make_app(database_url, tmp_path)
    assert not any(type(p).__name__ == "OpenTelemetryPlugin" for p in app.plugins)
    assert not hasattr(asyncpg.connection.Connection.fetch, "__wrapped__"), "asyncpg is not instrumented"
    assert tracing.span("parley.decide") is tracing.span("parley.append"), "one shared do-nothing context"

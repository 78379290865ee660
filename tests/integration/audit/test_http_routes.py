"""The auditor's routes through real HTTP (Litestar's test client) on PostgreSQL."""

from __future__ import annotations

import uuid

import msgspec
from litestar.testing import AsyncTestClient

from service.audit import merkle
from service.config import Settings
from service.audit.ledger import Sealer, ledger_key
from service.audit.offline import verified_head, verify_export
from service.store.event_store import EventStore
from tests.sealing import seal_everything

from .conftest import Writer, pending


async def test_the_log_pages_in_commit_order_with_a_next_link(
    api: AsyncTestClient, auditor: dict[str, str], store: EventStore, writer: Writer
) -> None:
    await writer.write(7)
    expected = [str(e.id) for e in await store.read_log()]
    seen, url, pages = [], "/events?limit=3", 0
    while url:
        response = await api.get(url, headers=auditor)
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        if page["next"]:
            assert response.headers["link"] == f'</events?limit=3&cursor={page["next"]}>; rel="next"'
            url = f"/events?limit=3&cursor={page['next']}"
        else:
            assert "link" not in response.headers
            url = ""
    assert seen == expected and pages == 3
    first = (await api.get("/events?limit=1", headers=auditor)).json()["items"][0]
    assert set(first) >= {"id", "position", "stream_id", "version", "type", "data", "hash", "checkpoint"}


async def test_the_log_filters_by_negotiation_stream_type_and_record_time(
    api: AsyncTestClient, auditor: dict[str, str], store: EventStore
) -> None:
    # The filter names a negotiation that exists (an unknown one is a 404): events 1
    # and 2 are on its stream.
    negotiation, other = uuid.uuid4(), uuid.uuid4()
    stream = negotiation

    def on_negotiation(n: int, type: str):
        return msgspec.structs.replace(pending(stream, n, negotiation_id=negotiation, type=type),
                                       stream_type="negotiation")

    # Record time is PostgreSQL's clock: event 2 is recorded last, after 1 and 3.
    await store.append([on_negotiation(1, "issue.raised")])
    await store.append([pending(uuid.uuid4(), 3, negotiation_id=other, type="position.stated")])
    [second] = (await store.append([on_negotiation(2, "position.stated")])).events
    boundary = second.recorded_at.isoformat().replace("+00:00", "Z")

    async def ns(query: str) -> list[int]:
        response = await api.get(f"/events?{query}", headers=auditor)
        assert response.status_code == 200, response.text
        return [msgspec.json.decode(msgspec.json.encode(i["data"]))["n"] for i in response.json()["items"]]

    assert await ns(f"negotiation={negotiation}") == [1, 2]
    assert await ns(f"stream={stream}") == [1, 2]
    assert await ns("type=issue.raised&type=position.stated") == [1, 3, 2]
    assert await ns("type=position.stated") == [3, 2]
    assert await ns(f"recorded_after={boundary}") == [2]
    assert await ns(f"recorded_before={boundary.replace('Z', '%2B00:00')}") == [1, 3]


async def test_bad_input_and_wrong_roles_are_problems_not_errors(
    api: AsyncTestClient, auditor: dict[str, str], reader: dict[str, str]
) -> None:
    for url in ("/events?cursor=nonsense", "/events?limit=0", "/events?negotiation=Not%20a%20slug",
                "/events/stream?after=x.y",
                # a checkpoint no xid8/bigint holds (was a 500)
                "/events?cursor=99999999999999999999999.1", "/events?cursor=1.99999999999999999999",
                "/events/stream?after=1.99999999999999999999",
                "/ledger/proofs/inclusion?event_id=nope", "/ledger/proofs/consistency?first=-1"):
        response = await api.get(url, headers=auditor)
        assert response.status_code == 400, (url, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    # Record-time bounds that are not instants: invalid-date, like every date error.
    for url in ("/events?recorded_after=2022-03-16T00:00:00", "/events?recorded_before=0.5",
                # an instant outside years 1-9999 in UTC (was a 500)
                "/events?recorded_after=9999-12-31T23:00:00-05:00"):
        response = await api.get(url, headers=auditor)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["type"] == "urn:parley:problem:invalid-date", response.text
    # A tree size beyond bigint names no published checkpoint (was a 500).
    response = await api.get("/ledger/checkpoints/99999999999999999999")
    assert response.status_code == 404, response.text
    for url in ("/events", "/events/stream", "/audit/export", "/audit/verify"):
        assert (await api.get(url, headers=reader)).status_code == 403, url
        assert (await api.get(url)).status_code == 401, url
    # The public log needs no key, whatever key is sent (service/http/tiles.py).
    for url in ("/ledger/public-key", "/ledger/checkpoints"):
        assert (await api.get(url)).status_code == 200, url
        assert (await api.get(url, headers=reader)).status_code == 200, url


async def test_export_verifies_offline_against_a_signed_checkpoint(
    api: AsyncTestClient, auditor: dict[str, str], writer: Writer, settings: Settings, store: EventStore
) -> None:
    await writer.write(6)
    sealer = Sealer(store.pool, ledger_key(settings))
    # The app's own sealer runs too: waiting for its round (not skipping it) makes
    # the latest checkpoint cover exactly the events written so far.
    await seal_everything(sealer)
    older = (await api.get("/ledger/checkpoints/latest")).json()
    await writer.write(5)
    await seal_everything(sealer)

    export = await api.get("/audit/export", headers=auditor)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = export.content.splitlines(keepends=True)
    assert len(lines) == 11

    checkpoint = (await api.get("/ledger/checkpoints/latest")).json()
    public_key = (await api.get("/ledger/public-key", headers=auditor)).json()
    assert checkpoint["tree_size"] == 11 and older["tree_size"] == 6
    head = verified_head(msgspec.json.encode(checkpoint).decode(), public_key["vkey"])
    old_head = verified_head(older["note"], public_key["pem"])
    report = verify_export(lines, [("checkpoint", head), ("older checkpoint", old_head)])
    assert report.ok, report
    assert report.events == 11 and report.streams == 3

    consistency = (await api.get("/ledger/proofs/consistency?first=6", headers=auditor)).json()
    merkle.verify_consistency(6, 11, old_head.root, head.root, [msgspec.json.decode(f'"{p}"', type=bytes)
                                                                 for p in consistency["proof"]])
    event_id = msgspec.json.decode(lines[3])["id"]
    inclusion = msgspec.json.decode(
        (await api.get(f"/ledger/proofs/inclusion?event_id={event_id}&tree_size=6", headers=auditor)).content
    )
    merkle.verify_inclusion(
        inclusion["leaf_index"],
        6,
        msgspec.json.decode(f'"{inclusion["leaf_hash"]}"', type=bytes),
        old_head.root,
        [msgspec.json.decode(f'"{p}"', type=bytes) for p in inclusion["proof"]],
    )
    assert (await api.get(f"/ledger/proofs/inclusion?event_id={uuid.uuid4()}", headers=auditor)).status_code == 404
    # No checkpoint of a size the log never reached (the app's sealer may have
    # published any size from 1 to 11 between the two rounds above).
    assert (await api.get("/ledger/checkpoints/12")).status_code == 404

    verify = (await api.get("/audit/verify", headers=auditor)).json()
    assert verify["ok"] and verify["events"] == 11 and verify["streams"] == 3 and verify["sealed"] == 11


async def test_the_export_filters_by_negotiation(
    api: AsyncTestClient, auditor: dict[str, str], store: EventStore
) -> None:
    mine = Writer(store, negotiation_id=uuid.uuid4())
    # The filter names a negotiation that exists (an unknown one is a 404): its stream.
    await store.append([msgspec.structs.replace(
        pending(mine.negotiation_id, type="negotiation.opened", negotiation_id=mine.negotiation_id),
        stream_type="negotiation")])
    await mine.write(4)
    await Writer(store, negotiation_id=uuid.uuid4()).write(3)
    export = await api.get(f"/audit/export?negotiation={mine.negotiation_id}", headers=auditor)
    lines = export.content.splitlines()
    assert len(lines) == 5
    assert verify_export(lines).ok

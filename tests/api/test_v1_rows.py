"""Upcasting: events stored under version 1 read correctly under version 2.

The rows are written as version 1 wrote them: agreements recorded through the
API with version 1 commands (whose stored bytes carry no version 2 field:
every field version 2 added has a default and defaults are omitted), and a
`position.stated` of schema version 1 (a single `condition`) plus a
`party.joined` appended to the store byte for byte as the version 1 encoder
wrote them. Statuses, views and the new lifecycle steps then work on them."""

from __future__ import annotations

import uuid

from domain.issue import issue_stream_id
from service.store.event_store import EventStore, PendingEvent

OPEN = {"title": "Talks", "slug": "talks", "parties": [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}],
        "occurred_on": "2022-03-01"}
V1_COMMANDS = [
    {"type": "issue.raised", "occurred_on": "2022-03-01", "issue": "x", "title": "X", "category": "other"},
    {"type": "agreement.reached", "occurred_on": "2022-03-05", "issue": "x", "agreement_id": "a1", "level": "final",
     "parties": ["RU", "UA"], "summary": "deal"},
    {"type": "agreement.implemented", "occurred_on": "2022-03-08", "issue": "x", "agreement_id": "a1"},
]


def v1_row(stream_id, stream_type, negotiation_id, type_, raw: bytes) -> PendingEvent:
    return PendingEvent(
        id=uuid.uuid4(), stream_id=stream_id, stream_type=stream_type, type=type_, schema_version=1,
        data=raw, occurred_on="2022-03-09", recorded_by="v1", recorded_at=None, negotiation_id=negotiation_id,
    )  # fmt: skip


async def test_version_1_rows_read_under_version_2(api, pool):
    opened = await api.open(OPEN)
    negotiation_id = uuid.UUID(opened["negotiation_id"])
    recorded = await api.record("talks", {"commands": V1_COMMANDS})
    reached, implemented = recorded["events"][1:]
    # Version 1 spelling: no `issues` on the agreement, no `extent` on its implementation.
    assert (reached["schema_version"], sorted(reached["data"])) == (1, ["agreement_id", "issue", "level", "parties", "summary"])
    assert (implemented["schema_version"], sorted(implemented["data"])) == (1, ["agreement_id", "issue"])

    store = EventStore(pool)
    issue = issue_stream_id(negotiation_id, "x")
    await store.append([
        v1_row(issue, "issue", negotiation_id, "position.stated",
               b'{"condition":"security guarantees first","issue":"x","party":"UA","stance":"conditional","summary":"s"}'),
        v1_row(negotiation_id, "negotiation", negotiation_id, "party.joined",
               b'{"party":{"code":"TR","name":"Turkey"},"role":"host"}'),
    ])

    stored = await store.read_stream(issue)
    assert stored[-1].schema_version == 1 and b'"condition"' in bytes(stored[-1].data)
    view = await api.get("/negotiations/talks/issues/x", as_of="2022-12-31")  # folded from the log
    assert view["positions"]["UA"]["conditions"] == ["security guarantees first"]
    [a] = view["agreements"]
    assert (view["status"], a["state"], a["issues"], a["in_force"], a["implementation"]) == (
        "implemented", "implemented", ["x"], True, {"extent": "full", "occurred_on": "2022-03-08"})
    negotiation = await api.get("/negotiations/talks", as_of="2022-12-31")
    [turkey] = [p for p in negotiation["parties"] if p["code"] == "TR"]
    assert (turkey["role"], turkey["roles"]) == ("host", ["host"])

    # Version 2 steps on the version 1 agreement, naming only its id.
    step = await api.record("talks", {"type": "agreement.implemented", "occurred_on": "2023-01-01", "agreement_id": "a1",
                                      "extent": "intermediate"})
    assert [(e["type"], e["schema_version"], e["data"]["extent"]) for e in step["events"]] == [
        ("agreement.implemented", 1, "intermediate")]
    now = await api.get("/negotiations/talks/issues/x", consistency_token=step["consistency_token"])
    assert (now["status"], now["agreements"][0]["implementation"]["extent"]) == ("implementing", "intermediate")
    await api.record("talks", {"type": "party.joined", "occurred_on": "2023-01-02", "party": {"code": "TR", "name": "Turkey"},
                               "role": "guarantor"})
    negotiation = await api.get("/negotiations/talks", as_of="2023-12-31")
    [turkey] = [p for p in negotiation["parties"] if p["code"] == "TR"]
    assert turkey["roles"] == ["host", "guarantor"]

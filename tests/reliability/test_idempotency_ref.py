"""Idempotency-Key by slug or by id (issue 15 finding 7): a retry that names the
negotiation by its id instead of its slug (or the reverse) is the same request,
answered with the stored response and writing nothing; the fingerprint covers the
resolved negotiation, not the path as typed."""

from __future__ import annotations

import httpx

from tests.reliability.conftest import PARTIES, event_count, live_server, make_app


async def test_a_retry_by_id_of_a_request_sent_by_slug_replays(database_url, tmp_path, keys):
    app = make_app(database_url, tmp_path)
    async with live_server(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        recorder = keys.headers("recorder")
        opened = await http.post("/negotiations", headers=recorder, json={
            "title": "Retries", "slug": "retries", "parties": PARTIES, "occurred_on": "2022-03-01"})
        assert opened.status_code == 201, opened.text
        negotiation_id = opened.json()["negotiation_id"]
        for n, (first, retry) in enumerate([("retries", negotiation_id), (negotiation_id, "retries")]):
            command = {"type": "statement.made", "occurred_on": "2022-03-02", "speaker": "Lavrov", "party": "RU",
                       "summary": f"said once ({n})"}
            headers = {**recorder, "Idempotency-Key": f"retry-{n}"}
            sent = await http.post(f"/negotiations/{first}/commands", json=command, headers=headers)
            assert sent.status_code == 201, sent.text
            before = await event_count(database_url)
            again = await http.post(f"/negotiations/{retry}/commands", json=command, headers=headers)
            assert again.status_code == 201, again.text
            assert again.headers.get("idempotent-replayed") == "true"
            assert again.content == sent.content
            assert await event_count(database_url) == before

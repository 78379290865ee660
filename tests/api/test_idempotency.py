"""Idempotency-Key: replay, reuse with another body, scope. (Concurrent retries of one
key race under a real server: tests/reliability/test_real_concurrency.py.)"""

from __future__ import annotations

import asyncpg

from domain.example import COMMANDS

PATH = "/negotiations/russia-ukraine-2022/commands"


async def count(database_url: str, table: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await conn.close()


async def test_same_key_same_body_replays_without_writing(api, client, keys, database_url):
    await api.open()
    headers = keys.headers("recorder", **{"Idempotency-Key": "k-1"})
    first = await client.post(PATH, json=COMMANDS[0], headers=headers)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    events = await count(database_url, "events")
    # Same content, other key order and spacing: still the same request.
    again = await client.post(
        PATH, content=b'{"role": "host", "party": {"name": "Belarus", "code": "BY"}, "type": "party.joined",'
        b' "occurred_on": "2022-02-28"}', headers={**headers, "Content-Type": "application/json"}
    )
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert await count(database_url, "events") == events


async def test_same_key_other_body_is_refused(api, client, keys):
    await api.open()
    headers = keys.headers("recorder", **{"Idempotency-Key": "k-2"})
    assert (await client.post(PATH, json=COMMANDS[0], headers=headers)).status_code == 201
    response = await client.post(PATH, json=COMMANDS[1], headers=headers)
    assert response.status_code == 422
    assert response.json()["type"] == "urn:parley:problem:idempotency-key-reused"
    # The key belongs to the API key that sent it: another client may use the same string.
    other = await client.post(PATH, json=COMMANDS[1], headers=keys.headers("admin", **{"Idempotency-Key": "k-2"}))
    assert other.status_code == 201


async def test_open_negotiation_is_idempotent_too(api, client, keys, database_url):
    from domain.example import OPENED

    headers = keys.headers("recorder", **{"Idempotency-Key": "open-1"})
    first = await client.post("/negotiations", json=OPENED, headers=headers)
    again = await client.post("/negotiations", json=OPENED, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert await count(database_url, "events") == 1


async def test_a_refused_command_is_not_remembered(api, client, keys):
    await api.open()
    headers = keys.headers("recorder", **{"Idempotency-Key": "k-4"})
    bad = {**COMMANDS[1], "participants": ["RU", "XX"]}
    assert (await client.post(PATH, json=bad, headers=headers)).status_code == 422
    assert (await client.post(PATH, json=COMMANDS[0], headers=headers)).status_code == 201


async def test_malformed_key(api, client, keys):
    await api.open()
    response = await client.post(PATH, json=COMMANDS[0], headers=keys.headers("recorder", **{"Idempotency-Key": "x" * 300}))
    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "Idempotency-Key"


STATEMENT = {"type": "statement.made", "occurred_on": "2022-02-28", "speaker": "Dmytro Kuleba", "party": "UA",
             "summary": "talks without preconditions"}


async def test_the_key_is_scoped_to_its_negotiation_and_its_api_key(api, client, keys, database_url):
    """The same Idempotency-Key with the same body is one request only on the same
    negotiation from the same API key: elsewhere it is never a replay of this one."""
    from domain.example import OPENED

    await api.open()
    other = await client.post("/negotiations", json={**OPENED, "slug": "other-talks", "title": "Other talks"},
                              headers=keys.headers("recorder"))
    assert other.status_code == 201, other.text
    headers = keys.headers("recorder", **{"Idempotency-Key": "scoped-1"})
    first = await client.post(PATH, json=STATEMENT, headers=headers)
    assert first.status_code == 201, first.text

    # Same key, same body, another negotiation: refused, not replayed (and nothing written).
    events = await count(database_url, "events")
    elsewhere = await client.post("/negotiations/other-talks/commands", json=STATEMENT, headers=headers)
    assert elsewhere.status_code == 422, elsewhere.text
    assert elsewhere.json()["type"] == "urn:parley:problem:idempotency-key-reused"
    assert await count(database_url, "events") == events

    # Same key, same body, same negotiation, another API key: its own request, written anew.
    admin = await client.post(PATH, json=STATEMENT, headers=keys.headers("admin", **{"Idempotency-Key": "scoped-1"}))
    assert admin.status_code == 201, admin.text
    assert "idempotent-replayed" not in admin.headers
    assert admin.json()["events"][0]["id"] != first.json()["events"][0]["id"]
    assert await count(database_url, "events") == events + 1

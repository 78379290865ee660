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

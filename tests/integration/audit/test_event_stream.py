"""`GET /events/stream` over a real socket (uvicorn in this process): events as
they are recorded, keep-alive comments, and a resumed stream that loses nothing
and repeats nothing."""

from __future__ import annotations

import asyncio

import httpx
import msgspec

from service.store.event_store import EventStore

from .conftest import Writer


async def read_stream(
    client: httpx.AsyncClient, headers: dict[str, str], wanted: int, comments: list[str] | None = None
) -> list[tuple[str, dict]]:
    """(id, event) pairs until `wanted` events came; then the connection is dropped."""
    received: list[tuple[str, dict]] = []
    event_id, data = None, None
    async with client.stream("GET", "/events/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith(":") and comments is not None:
                comments.append(line)
            elif line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                data = msgspec.json.decode(line[6:])
            elif line == "" and data is not None:
                received.append((event_id, data))
                event_id, data = None, None
                if len(received) == wanted:
                    break
    return received


async def test_a_resumed_stream_loses_nothing_and_repeats_nothing(
    base_url: str, auditor: dict[str, str], writer: Writer, store: EventStore
) -> None:
    await writer.write(5)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        first = await read_stream(client, auditor, 3)  # then the client goes away mid-stream
        await writer.write(4)  # recorded while it is disconnected
        comments: list[str] = []
        resume = {**auditor, "Last-Event-ID": first[-1][0]}
        reading = asyncio.create_task(read_stream(client, resume, 8, comments))
        await asyncio.sleep(0.6)  # idle long enough for a keep-alive comment
        await writer.write(2)  # and live events on the resumed stream
        rest = await asyncio.wait_for(reading, 10)

    log = await store.read_log()
    got = first + rest
    assert [data["id"] for _, data in got] == [str(e.id) for e in log]
    assert [event_id for event_id, _ in got] == [e.checkpoint.token() for e in log]
    assert ": keep-alive" in comments


async def test_a_bad_last_event_id_is_a_problem(base_url: str, auditor: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.get("/events/stream", headers={**auditor, "Last-Event-ID": "bogus"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")

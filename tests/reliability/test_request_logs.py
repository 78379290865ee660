"""A request followed from its X-Request-Id to the events it wrote (their
`correlation_id` in /events) and to its JSON log line, on a real `parley serve`
(PARLEY_LOG_FORMAT=json, its stderr captured)."""

from __future__ import annotations

import asyncio
import json
import signal

import httpx

from domain.example import COMMANDS, OPENED
from tests.reliability.conftest import free_port, kill_group, start_serve, wait_ready


async def _events(http: httpx.AsyncClient, headers: dict[str, str], negotiation_id: str, count: int) -> list[dict]:
    for _ in range(600):
        response = await http.get("/events", params={"negotiation": negotiation_id}, headers=headers)
        assert response.status_code == 200, response.text
        if len(items := response.json()["items"]) >= count:
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"/events showed {len(items)} of {count} events after 30 s")


async def test_a_request_id_leads_from_the_header_to_the_events_and_the_json_log_line(
    database_url, tmp_path, keys, processes
):
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_serve(database_url, port, log, PARLEY_LOG_FORMAT="json", PARLEY_LOG_LEVEL="INFO",
                          PARLEY_DATA_DIR=str(tmp_path))  # fmt: skip
    processes.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, log)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        opened = await http.post("/negotiations", json=OPENED, headers=keys.headers("recorder"))
        assert opened.status_code == 201, opened.text
        negotiation_id = opened.json()["negotiation_id"]
        recorded = await http.post(
            f"/negotiations/{negotiation_id}/commands", json={"commands": COMMANDS[:2]}, headers=keys.headers("recorder")
        )
        assert recorded.status_code == 201, recorded.text
        request_id = recorded.headers["x-request-id"]
        written = [e["id"] for e in recorded.json()["events"]]
        events = await _events(http, keys.headers("auditor"), negotiation_id, 1 + len(written))
    kill_group(process, signal.SIGTERM)

    # header -> events: exactly the events this request wrote carry its id
    assert sorted(e["id"] for e in events if e["correlation_id"] == request_id) == sorted(written)
    assert {e["correlation_id"] for e in events} == {opened.headers["x-request-id"], request_id}

    # header -> log line, and the log line's fields
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, log.read_text()[-2000:]
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert [(m["logger"], m["method"], m["route"], m["status"]) for m in mine] == [
        ("parley.http", "POST", "/negotiations/{ref}/commands", 201)
    ], mine
    assert mine[0]["path"] == f"/negotiations/{negotiation_id}/commands"
    assert mine[0]["level"] == "INFO" and mine[0]["duration_ms"] > 0
    # and every request had its line, the /events polls included
    assert {line["request_id"] for line in lines if line["logger"] == "parley.http"} >= {
        opened.headers["x-request-id"], request_id
    }
    # startup lines are JSON too, outside any request
    assert any(line["logger"].startswith("parley.") and "request_id" not in line for line in lines)

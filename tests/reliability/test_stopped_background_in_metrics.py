"""Sealing or projecting that stops is visible in /metrics (issue 14 item 8,
DESIGN "Provable history"), scraped over real HTTP from the real app: a
projection stuck at an event it cannot apply is `parley_projection_stuck 1` and
`parley_component_ok 0` with its error's time; a sealer whose rounds fail (its
checkpoints' table renamed away under it) is `parley_component_ok{component=
"sealer"} 0` with its last error's time, and its recovery shows after."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import asyncpg
import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from domain.example import OPENED
from projections import PROJECTION_NAMES
from service.store.event_store import EventStore
from tests.pending_events import pending

from .conftest import live_server, make_app


def gauges(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text) for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


async def scrape_until(http: httpx.AsyncClient, headers: dict[str, str], until: Callable[[dict], bool]) -> dict:
    deadline = time.monotonic() + 60  # a ceiling that fails loudly, not a speed claim
    while True:
        response = await http.get("/metrics", headers=headers)
        assert response.status_code == 200, response.text
        found = gauges(response.text)
        try:
            if until(found):
                return found
        except KeyError:  # not reported yet
            pass
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.1)


async def test_a_stuck_projection_and_a_failing_sealer_show_in_metrics(database_url, tmp_path, keys) -> None:
    reader = keys.headers("reader")
    async with live_server(make_app(database_url, tmp_path)) as url, httpx.AsyncClient(base_url=url) as http:
        opened = await http.post("/negotiations", json=OPENED, headers=keys.headers("recorder"))
        assert opened.status_code == 201, opened.text
        found = await scrape_until(http, reader, lambda m: all(
            value(m, "parley_component_last_success_timestamp_seconds", component=f"projection {name}") > 0
            for name in PROJECTION_NAMES
        ) and value(m, "parley_component_last_success_timestamp_seconds", component="sealer") > 0)
        for name in PROJECTION_NAMES:
            assert value(found, "parley_projection_stuck", projection=name) == 0
            assert value(found, "parley_component_ok", component=f"projection {name}") == 1
            assert value(found, "parley_component_last_error_timestamp_seconds", component=f"projection {name}") == 0
        assert value(found, "parley_component_ok", component="sealer") == 1
        assert value(found, "parley_component_ok", component="database") == 1

        # A poison event (data no payload decodes, as the old import let in).
        negotiation = uuid.UUID(opened.json()["negotiation_id"])
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        try:
            poison = msgspec.structs.replace(
                pending(negotiation, type="party.joined", negotiation_id=negotiation, unexpected=1),
                stream_type="negotiation",
            )
            await EventStore(pool).append([poison], {negotiation: 1})
            found = await scrape_until(http, reader, lambda m: all(
                value(m, "parley_projection_stuck", projection=name) == 1 for name in PROJECTION_NAMES))
            for name in PROJECTION_NAMES:
                assert value(found, "parley_component_ok", component=f"projection {name}") == 0
                assert value(found, "parley_component_last_error_timestamp_seconds",
                             component=f"projection {name}") > 0

            # The sealer's rounds fail while its checkpoints' table is away.
            await pool.execute("ALTER TABLE ledger_checkpoints RENAME TO ledger_checkpoints_away")
            try:
                found = await scrape_until(
                    http, reader, lambda m: value(m, "parley_component_ok", component="sealer") == 0)
                failed_at = value(found, "parley_component_last_error_timestamp_seconds", component="sealer")
                assert failed_at > 0
            finally:
                await pool.execute("ALTER TABLE IF EXISTS ledger_checkpoints_away RENAME TO ledger_checkpoints")
            found = await scrape_until(
                http, reader, lambda m: value(m, "parley_component_ok", component="sealer") == 1)
            assert value(found, "parley_component_last_success_timestamp_seconds", component="sealer") > failed_at
        finally:
            await pool.close()

"""Crashes: `parley serve` killed with -9 during a burst of concurrent commands, and a
`parley project` runner killed with -9 mid-batch with a second runner standing by.

After the crash every command that was acknowledged (2xx) is in the log exactly
once, nothing is there that was never sent, the hash chains verify, and every
projection equals a rebuild from the log, byte for byte of what is served.

Over 300 lines on purpose: both crashes share the burst, the acknowledged-commands
ledger and the comparison with a rebuild; apart they would repeat them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from projections import PROJECTION_NAMES, PROJECTIONS
from service.db import create_pool
from service.projection.rebuild import rebuild
from tests.reliability.conftest import (
    PARTIES,
    Keys,
    free_port,
    kill_group,
    make_app,
    parley_env,
    start_parley,
    start_serve,
    wait_ready,
)

ISSUES = ["security", "neutrality", "territory", "prisoners"]
STANCES = ["demands", "proposes", "supports", "accepts", "open_to", "opposes", "rejects", "undecided"]


def _command(n: int, rng: random.Random) -> dict[str, Any]:
    """A command that is always valid, whose `summary` names it uniquely."""
    summary = f"cmd-{n}"
    kind = rng.random()
    if kind < 0.4:
        return {"type": "statement.made", "occurred_on": "2022-03-10", "speaker": "Lavrov", "party": "RU",
                "summary": summary, "assessment": rng.choice(["optimistic", "neutral", "pessimistic"])}
    if kind < 0.8:
        return {"type": "position.stated", "occurred_on": f"2022-03-{rng.randint(10, 28)}",
                "issue": rng.choice(ISSUES), "party": rng.choice(["RU", "UA"]), "stance": rng.choice(STANCES),
                "summary": summary}
    return {"type": "issue.discussed", "occurred_on": "2022-03-11", "issue": rng.choice(ISSUES), "summary": summary}


async def _open(http: httpx.AsyncClient, slug: str) -> None:
    response = await http.post("/negotiations", json={"title": f"Crash {slug}", "slug": slug, "parties": PARTIES,
                                                       "occurred_on": "2022-03-01"})
    assert response.status_code == 201, response.text
    for issue in ISSUES:
        response = await http.post(f"/negotiations/{slug}/commands", json={
            "type": "issue.raised", "occurred_on": "2022-03-02", "issue": issue, "title": issue.title(),
            "category": "other"})
        assert response.status_code == 201, response.text


class Burst:
    """Closed-loop writers; what each command's outcome was."""

    def __init__(self) -> None:
        self.acked: dict[str, list[str]] = {}  # summary -> event ids served
        self.sent: set[str] = set()
        self.unknown: set[str] = set()  # sent, then the connection died
        self.refused: list[str] = []
        self.refused_summaries: set[str] = set()
        self.counter = itertools.count()

    async def writer(self, base: str, keys: Keys, slug: str, seed: int, stop: asyncio.Event) -> None:
        rng = random.Random(seed)
        async with httpx.AsyncClient(base_url=base, headers=keys.headers("recorder"), timeout=10) as http:
            while not stop.is_set():
                size = 1 if rng.random() < 0.7 else rng.randint(2, 5)
                commands = [_command(next(self.counter), rng) for _ in range(size)]
                summaries = [c["summary"] for c in commands]
                body = commands[0] if size == 1 else {"commands": commands}
                self.sent.update(summaries)
                try:
                    response = await http.post(f"/negotiations/{slug}/commands", json=body)
                except httpx.HTTPError:
                    self.unknown.update(summaries)
                    await asyncio.sleep(0.05)
                    continue
                if response.status_code == 201:
                    events = response.json()["events"]
                    for summary in summaries:
                        self.acked[summary] = [e["id"] for e in events if e["data"].get("summary") == summary]
                elif response.status_code >= 500:
                    self.unknown.update(summaries)
                else:
                    self.refused.append(f"{response.status_code} {response.text[:200]}")
                    self.refused_summaries.update(summaries)


async def _log_summaries(database_url: str) -> dict[str, list[str]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id::text, data->>'summary' AS summary FROM events WHERE data ? 'summary'")
    finally:
        await conn.close()
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["summary"], []).append(row["id"])
    return found


async def served_views(http: httpx.AsyncClient, slug: str) -> dict[str, bytes]:
    """Everything the read models serve about one negotiation, as bytes."""
    views = {"list": (await http.get("/negotiations", params={"limit": 100})).content}
    views["summary"] = (await http.get(f"/negotiations/{slug}")).content
    views["issues"] = (await http.get(f"/negotiations/{slug}/issues")).content
    for issue in ISSUES:
        views[f"issue {issue}"] = (await http.get(f"/negotiations/{slug}/issues/{issue}")).content
    cursor, page = None, 0
    while True:
        response = await http.get(f"/negotiations/{slug}/timeline", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        views[f"timeline {page}"] = response.content
        cursor, page = response.json()["next"], page + 1
        if not cursor:
            return views


async def wait_projected(database_url: str, within: float = 60) -> int:
    """Until every projection's checkpoint is the head of the log; returns the
    number of events in the log."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + within
        while True:
            behind = await conn.fetchval(
                """
                SELECT count(*) FROM projection_checkpoints c
                WHERE c.name = ANY($1::text[]) AND EXISTS (
                    SELECT 1 FROM events e WHERE (e.txid, e.position) > (c.txid::text::xid8, c.position))
                """,
                list(PROJECTION_NAMES),
            )
            if behind == 0:
                return await conn.fetchval("SELECT count(*) FROM events")
            assert time.monotonic() < deadline, "projections did not catch up"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def projection_rows(database_url: str) -> dict[str, list[tuple]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = {}
        for name in PROJECTION_NAMES:
            for table in PROJECTIONS[name]().tables:
                rows[table] = [tuple(r) for r in await conn.fetch(f'SELECT * FROM "{table}" ORDER BY 1, 2')]
        return rows
    finally:
        await conn.close()


@pytest.mark.timeout(300)
async def test_serve_killed_during_a_burst_loses_nothing_acknowledged(database_url, keys, tmp_path: Path, processes):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    env = {"PARLEY_DATA_DIR": str(tmp_path)}
    process = start_serve(database_url, port, log, workers=2, **env)
    processes.append(process)
    wait_ready(base, process, log)
    async with httpx.AsyncClient(base_url=base, headers=keys.headers("recorder"), timeout=30) as http:
        await _open(http, "crash")
    burst = Burst()
    stop = asyncio.Event()
    writers = [asyncio.create_task(burst.writer(base, keys, "crash", seed, stop)) for seed in range(16)]
    # Kill while commands are in flight: once enough have been acknowledged.
    deadline = time.monotonic() + 30
    while len(burst.acked) < 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    killed_at = time.monotonic()
    kill_group(process, signal.SIGKILL)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*writers)
    # On a busy machine fewer commands make it in before the deadline; what
    # matters is that the kill lands mid-burst, with acknowledged work behind it.
    assert len(burst.acked) >= 50, (len(burst.acked), burst.refused[:3])
    # Sixteen writers on one negotiation stream, none naming an expected_version:
    # a lost race is decided again with the stream head held, so none is refused.
    assert burst.refused == [], burst.refused[:5]

    restarted = start_serve(database_url, port, log, workers=1, **env)
    processes.append(restarted)
    wait_ready(base, restarted, log)
    recovered_in = time.monotonic() - killed_at

    in_log = await _log_summaries(database_url)
    for summary, ids in burst.acked.items():
        assert in_log.get(summary) == ids, f"acknowledged {summary} is in the log as {in_log.get(summary)}"
    never_acked = set(in_log) - set(burst.acked)
    assert never_acked <= burst.unknown, f"in the log but never sent or refused: {sorted(never_acked - burst.unknown)[:5]}"
    assert all(len(ids) == 1 for ids in in_log.values())
    assert not (burst.refused_summaries & set(in_log)), "a refused command was written"

    total = await wait_projected(database_url)
    async with httpx.AsyncClient(base_url=base, headers=keys.headers("auditor"), timeout=60) as http:
        verify = await http.get("/audit/verify")
        assert verify.status_code == 200 and verify.json()["ok"] is True, verify.text
        live = await served_views(http, "crash")
        rebuilt_run = start_parley(["projections", "rebuild", "ALL"], parley_env(database_url), tmp_path / "rebuild.log")
        processes.append(rebuilt_run)
        assert await asyncio.to_thread(rebuilt_run.wait, 120) == 0, (tmp_path / "rebuild.log").read_text()
        rebuilt = await served_views(http, "crash")
    assert rebuilt.keys() == live.keys()
    for name in live:
        assert rebuilt[name] == live[name], f"{name} differs after a rebuild"
    print(f"\ncrash: {len(burst.acked)} acknowledged, {len(burst.refused)} refused 409, {len(burst.unknown)} in flight "
          f"({len(never_acked)} of them committed), {total} events verified, back in {recovered_in:.1f}s")


async def _write_workload(database_url: str, keys: Keys, tmp_path: Path, commands: int) -> None:
    """Record `commands` commands through the real app, then stop it."""
    from litestar.testing import AsyncTestClient

    rng = random.Random(7)
    async with AsyncTestClient(make_app(database_url, tmp_path), raise_server_exceptions=False) as client:
        client.headers.update(keys.headers("recorder"))
        for slug in ("alpha", "beta", "gamma"):
            await _open(client, slug)  # type: ignore[arg-type]
        counter = itertools.count()
        for _ in range(commands // 100):
            slug = rng.choice(["alpha", "beta", "gamma"])
            batch = [_command(next(counter), rng) for _ in range(100)]
            response = await client.post(f"/negotiations/{slug}/commands", json={"commands": batch})
            assert response.status_code == 201, response.text


@pytest.mark.timeout(300)
async def test_runner_killed_mid_batch_is_replaced_with_no_gap_and_no_double_count(
    database_url, keys, tmp_path: Path, processes
):
    await _write_workload(database_url, keys, tmp_path, 6000)
    conn = await asyncpg.connect(database_url)
    try:
        total = await conn.fetchval("SELECT count(*) FROM events")
        # Every projection starts over from the beginning of the log.
        for name in PROJECTION_NAMES:
            for table in PROJECTIONS[name]().tables:
                await conn.execute(f'TRUNCATE "{table}"')
        await conn.execute("UPDATE projection_checkpoints SET txid = 0, position = 0, events_applied = 0")

        env = parley_env(database_url)
        first = start_parley(["project"], env, tmp_path / "first.log")
        processes.append(first)
        holder_query = """
            SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::bigint AND granted
        """
        from service.projection.checkpoints import HOLDER_LOCK_CLASS

        deadline = time.monotonic() + 60
        while await conn.fetchval(holder_query, HOLDER_LOCK_CLASS) < len(PROJECTION_NAMES):
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the first runner never held every projection"
            await asyncio.sleep(0.02)
        standby = start_parley(["project"], env, tmp_path / "standby.log")
        processes.append(standby)
        # Kill the holder while it is inside a batch transaction, half way through.
        while True:
            in_batch = await conn.fetchval(
                """
                SELECT count(*) FROM pg_stat_activity
                WHERE application_name LIKE 'parley-projector:%' AND xact_start IS NOT NULL
                  AND query NOT LIKE '%pg_try_advisory_lock%'
                """
            )
            progress = await conn.fetchval("SELECT min(events_applied) FROM projection_checkpoints")
            if in_batch and 0 < progress:
                break
            assert progress < total, "the first runner finished before it could be killed"
            await asyncio.sleep(0.005)
        applied_before_kill = await conn.fetch("SELECT name, events_applied FROM projection_checkpoints ORDER BY name")
        killed_at = time.monotonic()
        kill_group(first, signal.SIGKILL)
        assert min(r["events_applied"] for r in applied_before_kill) < total

        projected = await wait_projected(database_url, within=120)
        took_over_in = time.monotonic() - killed_at
        assert standby.poll() is None, (tmp_path / "standby.log").read_text()
        counts = {r["name"]: r["events_applied"] for r in await conn.fetch(
            "SELECT name, events_applied FROM projection_checkpoints")}
        # Every event applied exactly once per projection: no gap, no double count.
        assert counts == {name: total for name in PROJECTION_NAMES}, (counts, total)
        assert projected == total
        timeline_rows = await conn.fetchval("SELECT count(*) FROM timeline")
        assert timeline_rows == total
    finally:
        await conn.close()
    live = await projection_rows(database_url)
    kill_group(standby, signal.SIGTERM)
    rebuilding = await create_pool(database_url, min_size=2, max_size=2)
    try:
        for name in PROJECTION_NAMES:
            await rebuild(rebuilding, name, progress=None)
    finally:
        await rebuilding.close()
    rebuilt = await projection_rows(database_url)
    for table in live:
        assert rebuilt[table] == live[table], f"{table} differs from a rebuild"
    print(f"\nfailover: {total} events, killed at {dict((r['name'], r['events_applied']) for r in applied_before_kill)}, "
          f"standby caught up {took_over_in:.1f}s after the kill")

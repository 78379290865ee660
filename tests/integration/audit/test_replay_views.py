"""Offline replay of every view (issue 14 item 8): from an export's hashed bodies
alone, `parley audit replay` gives each negotiation's view, its issues and its
timeline equal to what the server serves, now and at several `as_of` / `known_at`
points; `--against` compares them all with a live server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest

from domain.example import COMMANDS, OPENED
from service.audit.offline import replay_views
from service.auth import Role, create_key
from service.cli.parley import main
from tests.api.test_world_agreements import GFA, GFA_IMPLEMENTATION, GFA_SIGNING


async def parley(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def _all_pages(client: httpx.AsyncClient, path: str, params: dict[str, str]) -> list:
    items, cursor = [], None
    while True:
        page = (await client.get(path, params={**params, "limit": "7", **({"cursor": cursor} if cursor else {})}))
        assert page.status_code == 200, (path, params, page.text)
        body = page.json()
        items.extend(body["items"])
        if (cursor := body["next"]) is None:
            return items


async def served(client: httpx.AsyncClient, negotiation_id: str, params: dict[str, str]) -> dict:
    negotiation = await client.get(f"/negotiations/{negotiation_id}", params=params)
    assert negotiation.status_code == 200, negotiation.text
    return {
        "negotiation_id": negotiation_id,
        "negotiation": negotiation.json(),
        "issues": await _all_pages(client, f"/negotiations/{negotiation_id}/issues", params),
        "timeline": await _all_pages(client, f"/negotiations/{negotiation_id}/timeline", params),
    }


async def _record(client: httpx.AsyncClient, ref: str, commands: list[dict]) -> str:
    for command in commands:
        response = await client.post(f"/negotiations/{ref}/commands", json=command)
        assert response.status_code == 201, response.text
    return response.json()["consistency_token"]


async def test_replay_equals_every_served_view_now_and_in_the_past(
    pool: asyncpg.Pool, base_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = {"Authorization": f"Bearer {await create_key(pool, 'replay-recorder', Role.RECORDER)}"}
    auditor = await create_key(pool, "replay-auditor", Role.AUDITOR)
    async with httpx.AsyncClient(base_url=base_url, headers=recorder, timeout=60) as client:
        gfa = (await client.post("/negotiations", json=GFA)).json()["negotiation_id"]
        await _record(client, gfa, GFA_SIGNING)
        # known_at points: as the log stood after the signing, then after a correction.
        signed_at = (await client.get(f"/negotiations/{gfa}")).json()
        first_events = (await client.get("/events", params={"negotiation": gfa, "limit": "1000"},
                                          headers={"Authorization": f"Bearer {auditor}"})).json()["items"]
        after_signing = first_events[-1]["recorded_at"]
        await _record(client, gfa, GFA_IMPLEMENTATION)
        full = [e for e in (await client.get("/events", params={"negotiation": gfa, "limit": "1000"},
                                              headers={"Authorization": f"Bearer {auditor}"})).json()["items"]
                if e["type"] == "agreement.implemented"]
        # A correction recorded later: known_at before it shows the fact, after it not.
        token = await _record(client, gfa, [{"type": "record.retracted", "event_id": full[-1]["id"],
                                             "reason": "misdated", "occurred_on": "2007-05-09"}])
        report = (await client.post("/negotiations", json=OPENED)).json()["negotiation_id"]
        token = await _record(client, report, COMMANDS)
        assert signed_at["status"] and after_signing

        export = tmp_path / "export.ndjson"
        assert await parley("audit", "export", "--url", base_url, "--key", auditor, "-o", str(export)) == 0
        lines = export.read_bytes().splitlines()
        before_retraction = full[-1]["recorded_at"]
        points = [
            {},
            {"as_of": "1998-04-10"},
            {"as_of": "1998-05-22"},
            {"as_of": "2006-01-01"},
            {"as_of": "2022-03-12"},
            {"known_at": after_signing},
            {"known_at": before_retraction},
            {"as_of": "2006-01-01", "known_at": before_retraction},
        ]
        client.headers.update({"Authorization": f"Bearer {auditor}"})
        # The projections have applied everything before the present is compared.
        caught_up = await client.get(f"/negotiations/{report}", params={"consistency_token": token})
        assert caught_up.status_code == 200, caught_up.text
        compared = 0
        for params in points:
            replayed = {str(n.negotiation_id): msgspec.to_builtins(n) for n in replay_views(lines, **params)}
            for negotiation_id in (gfa, report):
                response = await client.get(f"/negotiations/{negotiation_id}", params=params)
                if response.status_code == 404:  # not opened yet in that window: nor in the replay
                    assert negotiation_id not in replayed, params
                    continue
                assert replayed[negotiation_id] == await served(client, negotiation_id, params), (params, negotiation_id)
                compared += 1
        assert compared >= 10
        # The past differs from the present (the points are not all the same view).
        views = [msgspec.json.encode(replay_views(lines, **p)) for p in points]
        assert len(set(views)) >= 6

        # The command line prints the same, and --against compares every view.
        capsys.readouterr()
        assert await parley("audit", "replay", str(export), "--as-of", "1998-05-22") == 0
        printed = msgspec.json.decode(capsys.readouterr().out)
        assert printed == msgspec.to_builtins(replay_views(lines, as_of="1998-05-22"))
        # (Before the example report was recorded, the log held one negotiation.)
        for params, negotiations in (({}, 2), ({"as_of": "1998-05-22", "known_at": before_retraction}, 1)):
            flags = [f"--{name.replace('_', '-')}={value}" for name, value in params.items()]
            assert await parley("audit", "replay", str(export), *flags, "--against", base_url, "--key", auditor) == 0
            out = capsys.readouterr().out
            assert f"ok: all {negotiations} negotiations" in out and "replay to the server's views" in out, out
        # A replay that differs is named: the export without its last line (the
        # report's last command) against the server now.
        shorter = tmp_path / "shorter.ndjson"
        shorter.write_bytes(b"".join(line + b"\n" for line in lines[:-1]))
        assert await parley("audit", "replay", str(shorter), "--against", base_url, "--key", auditor) == 1
        out = capsys.readouterr().out
        assert f"{report} " in out and "1 of 2 negotiations differ from the server" in out, out

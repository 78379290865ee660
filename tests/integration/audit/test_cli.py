"""`parley audit export|verify|replay` end to end: export from the database or a
server, verify offline against signed checkpoints, replay against a live server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest

from service.auth import Role, create_key
from service.cli.parley import main
from service.config import Settings
from service.cli.demo import record_example
from service.audit.ledger import Ledger, Sealer, ledger_key

from .conftest import Writer


async def parley(*argv: str) -> int:
    # The CLI runs its own event loop (asyncio.run): give it a thread.
    return await asyncio.to_thread(main, list(argv))


async def save_checkpoint(pool: asyncpg.Pool, path: Path) -> None:
    latest = await Ledger(pool).latest_checkpoint()
    assert latest is not None
    path.write_text(latest.note())


async def test_export_from_the_database_and_verify_offline(
    pool: asyncpg.Pool,
    writer: Writer,
    settings: Settings,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sealer = Sealer(pool, ledger_key(settings))
    await writer.write(6)
    await sealer.seal_once()
    await save_checkpoint(pool, tmp_path / "older.checkpoint")
    await writer.write(5)
    await sealer.seal_once()
    await save_checkpoint(pool, tmp_path / "latest.checkpoint")
    (tmp_path / "parley.vkey").write_text(ledger_key(settings).verifier.vkey() + "\n")

    export = tmp_path / "export.ndjson"
    assert await parley("--database-url", database_url, "audit", "export", "-o", str(export)) == 0
    assert len(export.read_bytes().splitlines()) == 11

    verify = ["audit", "verify", str(export), "--checkpoint", str(tmp_path / "latest.checkpoint"),
              "--public-key", str(tmp_path / "parley.vkey")]
    capsys.readouterr()
    assert await parley(*verify, "--older-checkpoint", str(tmp_path / "older.checkpoint")) == 0
    out = capsys.readouterr().out
    assert "11 events in 3 streams" in out and "ok: every chain verifies and every checkpoint matches" in out

    # One byte of one event's body changed in the file.
    lines = export.read_bytes().splitlines(keepends=True)
    victim = msgspec.json.decode(lines[7])
    lines[7] = lines[7].replace(b'\\"n\\":7', b'\\"n\\":9', 1)
    assert b'\\"n\\":9' in lines[7]
    export.write_bytes(b"".join(lines))
    assert await parley(*verify) == 1
    out = capsys.readouterr().out
    assert f"line 8: hash_mismatch at event {victim['id']}" in out
    assert "FAILED: the export's first 11 events do not give the root" not in out  # hashes untouched: root holds

    # A checkpoint whose text was changed no longer carries a valid signature.
    forged = tmp_path / "forged.checkpoint"
    forged.write_text((tmp_path / "latest.checkpoint").read_text().replace("\n11\n", "\n12\n"))
    assert await parley("audit", "verify", str(export), "--checkpoint", str(forged),
                        "--public-key", str(tmp_path / "parley.vkey")) == 1
    assert "checkpoint refused" in capsys.readouterr().err


async def test_an_export_that_drops_an_event_fails_the_checkpoint(
    pool: asyncpg.Pool, writer: Writer, settings: Settings, database_url: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await writer.write(6)
    await Sealer(pool, ledger_key(settings)).seal_once()
    await save_checkpoint(pool, tmp_path / "cp")
    (tmp_path / "key.pem").write_text(ledger_key(settings).verifier.pem())
    export = tmp_path / "export.ndjson"
    assert await parley("--database-url", database_url, "audit", "export", "-o", str(export)) == 0
    lines = export.read_bytes().splitlines(keepends=True)
    export.write_bytes(b"".join(lines[:2] + lines[3:]))  # the last event of stream 2 goes missing
    capsys.readouterr()
    assert await parley("audit", "verify", str(export), "--checkpoint", str(tmp_path / "cp"),
                        "--public-key", str(tmp_path / "key.pem")) == 1
    assert "FAILED: the export has fewer events than the checkpoint" in capsys.readouterr().out


async def test_export_from_a_server_and_replay_against_it(
    pool: asyncpg.Pool, base_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], runtime
) -> None:
    record = await record_example(runtime)
    auditor = await create_key(pool, "cli-auditor", Role.AUDITOR)
    recorder = await create_key(pool, "cli-recorder", Role.RECORDER)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {recorder}"}) as client:
        # A correction and a dispute: both must travel in the export and count in the replay.
        page = (await client.get(f"/events?negotiation={record.negotiation_id}&type=corridor.rejected",
                                 headers={"Authorization": f"Bearer {auditor}"})).json()
        rejected = page["items"][0]
        proposals = (await client.get(f"/events?negotiation={record.negotiation_id}&type=corridor.proposed",
                                      headers={"Authorization": f"Bearer {auditor}"})).json()["items"]
        commands = {"commands": [
            {"type": "record.retracted", "event_id": rejected["id"], "reason": "misreported",
             "occurred_on": "2022-03-17"},
            {"type": "claim.disputed", "event_id": proposals[0]["id"], "by": "UA", "summary": "never offered",
             "occurred_on": "2022-03-17"},
        ]}
        response = await client.post(f"/negotiations/{record.negotiation_id}/commands", json=commands)
        assert response.status_code in (200, 201), response.text
        token = response.json()["consistency_token"]
        ready = await client.get(f"/negotiations/{record.negotiation_id}/issues?consistency_token={token}")
        assert ready.status_code == 200

    export = tmp_path / "export.ndjson"
    assert await parley("audit", "export", "--url", base_url, "--key", auditor, "-o", str(export)) == 0
    types = [msgspec.json.decode(line)["type"] for line in export.read_bytes().splitlines()]
    assert "record.retracted" in types and "claim.disputed" in types

    capsys.readouterr()
    assert await parley("audit", "replay", str(export)) == 0
    [replayed] = msgspec.json.decode(capsys.readouterr().out)
    assert replayed["negotiation_id"] == str(record.negotiation_id)
    assert {issue["key"] for issue in replayed["issues"]} >= {"ceasefire", "humanitarian-corridors"}
    assert {"record.retracted", "claim.disputed"} <= {entry["type"] for entry in replayed["timeline"]}

    assert await parley("audit", "replay", str(export), "--against", base_url, "--key", auditor) == 0
    assert (f"ok: all 1 negotiations ({len(replayed['issues'])} issues, {len(replayed['timeline'])} timeline entries)"
            " replay to the server's views") in capsys.readouterr().out


async def test_export_needs_a_key_for_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARLEY_API_KEY", raising=False)
    assert await parley("audit", "export", "--url", "http://127.0.0.1:9", "-o", str(tmp_path / "x")) == 2
    assert "--key" in capsys.readouterr().err

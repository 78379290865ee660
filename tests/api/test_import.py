"""`parley import`: NDJSON of commands through the command service; an export restored
byte for byte (same ids, versions and hashes) into another database."""

from __future__ import annotations

import json

import asyncpg
import msgspec

from domain.example import COMMANDS, OPENED
from service.cli.parley import main
from service.db import create_pool
from service.store.envelope import exported
from service.cli.importer import ImportFailed, import_file
from service.migrate import migrate
from service.store.event_store import EventStore
from tests.conftest import wired


async def test_import_commands_then_restore_the_export(pool, runtime, empty_database_url, tmp_path):
    commands = tmp_path / "report.ndjson"
    commands.write_text("\n".join(json.dumps(c) for c in [OPENED, *COMMANDS]) + "\n")
    report = await import_file(runtime, commands)
    assert report.lines == 1 + len(COMMANDS) and report.events_written == 1 + len(COMMANDS) + 2
    again = await import_file(runtime, commands)
    assert again.events_written == 0 and again.replayed == again.lines

    events = await EventStore(pool).read_log(limit=10_000)
    export = tmp_path / "export.ndjson"
    export.write_bytes(b"".join(msgspec.json.encode(exported(e)) + b"\n" for e in events))
    conn = await asyncpg.connect(empty_database_url)
    await migrate(conn)
    await conn.close()
    target = await create_pool(empty_database_url, min_size=1, max_size=2)
    try:
        restored = await import_file(wired(target, empty_database_url), export)
        assert restored.events_written == len(events)
        assert (await import_file(wired(target, empty_database_url), export)).events_written == 0
        copy = await EventStore(target).read_log(limit=10_000)
        assert [(e.id, e.version, e.hash, e.body) for e in copy] == [(e.id, e.version, e.hash, e.body) for e in events]
        assert await target.fetchval("SELECT negotiation_id FROM negotiation_slugs WHERE slug = $1",
                                     OPENED["slug"]) == events[0].stream_id
    finally:
        await target.close()


async def test_a_bad_line_stops_the_import_with_its_number(runtime, tmp_path):
    path = tmp_path / "bad.ndjson"
    path.write_text(json.dumps(OPENED) + "\n" + json.dumps({**COMMANDS[1], "participants": ["XX"]}) + "\n")
    try:
        await import_file(runtime, path)
    except ImportFailed as error:
        assert error.line == 2 and "unknown-party" in str(error)
    else:
        raise AssertionError("the import should have failed")


def test_cli_import(database_url, tmp_path, capsys):
    path = tmp_path / "one.ndjson"
    path.write_text(json.dumps({**OPENED, "slug": "cli-import"}) + "\n" + json.dumps(COMMANDS[0]) + "\n")
    assert main(["--database-url", database_url, "import", str(path)]) == 0
    assert "2 events written" in capsys.readouterr().err  # opened + party.joined
    assert main(["--database-url", database_url, "import", str(path)]) == 0
    assert "2 already recorded" in capsys.readouterr().err

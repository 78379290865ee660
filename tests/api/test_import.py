"""`parley import`: NDJSON of commands through the command service; an export
re-recorded through the domain's rules into another database (same ids, streams and
versions; this database's record time and chain; the source's as a claim), and
every line the rules or the line's own hashes refuse stops the import, writing
nothing of it."""

from __future__ import annotations

import json
import uuid

import asyncpg
import msgspec

from domain.example import COMMANDS, OPENED
from service.cli.parley import main
from service.db import create_pool
from service.store.canonical import chain_hash
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
        again = await import_file(wired(target, empty_database_url), export)
        assert again.events_written == 0 and again.replayed == len(events)
        copy = {e.id: e for e in await EventStore(target).read_log(limit=10_000)}
        for event in events:
            twin = copy[event.id]
            assert (twin.stream_id, twin.version, twin.type, twin.data) == (
                event.stream_id, event.version, event.type, event.data)
            # This log's own record time and chain; the source's kept as a claim only.
            assert twin.recorded_at > event.recorded_at and twin.hash != event.hash
            assert twin.recorded_by == "import"
            assert twin.import_claim is not None and twin.import_claim.hash == event.hash.hex()
            assert twin.import_claim.recorded_at == msgspec.json.decode(event.body)["recorded_at"]
            assert twin.import_claim.recorded_by == event.recorded_by
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


async def _report_lines(pool, runtime, tmp_path) -> list[dict]:
    commands = tmp_path / "report.ndjson"
    commands.write_text("\n".join(json.dumps(c) for c in [OPENED, *COMMANDS[:6]]) + "\n")
    await import_file(runtime, commands)
    return [json.loads(msgspec.json.encode(exported(e))) for e in await EventStore(pool).read_log(limit=10_000)]


def _next_in_stream(lines: list[dict], like: dict, **changes: object) -> dict:
    """A line after `like`'s stream's last line, with its body changed as asked and
    chained from that last line's hash: a line that verifies on its own terms."""
    last = [line for line in lines if line["stream_id"] == like["stream_id"]][-1]
    body = {**json.loads(last["body"]), "id": str(uuid.uuid4()), "version": last["version"] + 1, **changes}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    served = {**last, **{k: v for k, v in body.items() if k in last and k != "recorded_at"}, "body": text}
    served["hash"] = chain_hash(bytes.fromhex(last["hash"]), text.encode()).hex()
    return served


async def test_bad_export_lines_are_refused_and_write_nothing(pool, runtime, empty_database_url, tmp_path):
    lines = await _report_lines(pool, runtime, tmp_path)
    opened = lines[0]
    concluded = _next_in_stream(lines, opened, type="negotiation.concluded", data={"outcome": "signed"})
    twice = _next_in_stream([*lines, concluded], opened, type="negotiation.concluded", data={"outcome": "again"},
                            recorded_by="un-secretary-general")
    unexpected = _next_in_stream(lines, opened, type="party.joined", data={"unexpected": 1})
    second = lines[1]
    other_author = {**second, "recorded_by": "someone-else"}
    altered = {**second, "body": second["body"].replace('"BY"', '"BX"'),
               "data": json.loads(json.dumps(second["data"]).replace('"BY"', '"BX"'))}
    cases = {
        # The findings: a second conclusion, which the API refuses with 409 ...
        "a second negotiation.concluded": (lines + [concluded, twice], twice, "negotiation-concluded"),
        # ... and data no command has, which stalled every projection for good.
        "party.joined with data no command has": (lines + [unexpected], unexpected, "states no command"),
        "a served field that is not its body": ([opened, other_author], other_author, "recorded_by"),
        "an altered body under its old hash": ([opened, altered], altered, "was altered"),
    }
    conn = await asyncpg.connect(empty_database_url)
    await migrate(conn)
    await conn.close()
    for name, (file_lines, bad, expected) in cases.items():
        await _fresh(empty_database_url)
        target = await create_pool(empty_database_url, min_size=1, max_size=2)
        try:
            path = tmp_path / "bad.ndjson"
            path.write_text("".join(json.dumps(line) + "\n" for line in file_lines))
            try:
                await import_file(wired(target, empty_database_url), path)
            except ImportFailed as error:
                assert expected in str(error), (name, str(error))
                assert error.line == file_lines.index(bad) + 1, name
            else:
                raise AssertionError(f"{name}: imported")
            # Everything before the bad line went in, nothing after it.
            assert await target.fetchval("SELECT count(*) FROM events") == file_lines.index(bad), name
        finally:
            await target.close()


async def _fresh(url: str) -> None:
    """Empty the target database's log again (as its owner, triggers off): each case starts clean."""
    conn = await asyncpg.connect(url)
    try:
        for table in ("events", "streams", "negotiation_slugs", "issue_status", "negotiation_summary",
                      "negotiation_summary_issues", "timeline", "timeline_parties"):
            await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            await conn.execute(f"DELETE FROM {table}")
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await conn.close()

"""The witness-backed record-time check offline (issue 14 item 3): `parley audit
verify EXPORT --public-key KEY --cosigned NOTE… --witness-key FILE` bounds every
event's hashed `recorded_at` at its line's `leaf_index` with the cosignatures on
the checkpoints an auditor saved (docs/audit-format.md §9), and names a backdated,
correctly chained insert that every chain and root check passes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import io
from pathlib import Path

import asyncpg
import msgspec
import pytest

from service.audit import log as audit_log
from service.audit.ledger import Ledger, Sealer, ledger_key
from service.audit.offline import verify_export
from service.audit.record_time import Bound, RecordTimeBounds
from service.cli.parley import main
from service.config import Settings
from service.store.event_store import EventStore
from tests.sealing import seal_everything

from .conftest import Writer
from .test_tamper_matrix import in_process_witness, served_note
from .test_witnesses import backdate


async def parley(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def run() -> int:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return main(list(argv))

    status = await asyncio.to_thread(run)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
async def saved(pool: asyncpg.Pool, settings: Settings, tmp_path: Path) -> dict[str, object]:
    """Five events, cosigned at 5; three more, cosigned at 8 (the auditor saved both
    served notes); then a backdated chained insert, sealed at 9 and not cosigned."""
    writer = Writer(EventStore(pool))
    sealer = Sealer(pool, ledger_key(settings))
    cosigner, witness = in_process_witness(pool, settings, tmp_path)
    files: dict[str, object] = {"witness": witness}
    for count, size in ((5, 5), (3, 8)):
        await writer.write(count)
        await seal_everything(sealer)
        assert await cosigner.cosign_once() == {witness.name: size}
        (tmp_path / f"cp-{size}.note").write_text(await served_note(pool))
    files["backdated"] = await backdate(pool, writer.streams[0])
    await seal_everything(sealer)
    assert (await Ledger(pool).latest_checkpoint()).tree_size == 9
    export = tmp_path / "export.ndjson"
    export.write_bytes(b"".join([c async for c in audit_log.export_lines(EventStore(pool))]))
    (tmp_path / "log.vkey").write_text(ledger_key(settings).verifier.vkey() + "\n")
    (tmp_path / "witness.vkey").write_text(witness.vkey() + "\n")
    files.update(export=str(export), key=str(tmp_path / "log.vkey"), witness_key=str(tmp_path / "witness.vkey"),
                 cp5=str(tmp_path / "cp-5.note"), cp8=str(tmp_path / "cp-8.note"))
    return files


async def test_a_backdated_insert_is_named_offline_by_the_witness_check(saved: dict) -> None:
    base = ["audit", "verify", saved["export"], "--public-key", saved["key"],
            "--cosigned", saved["cp5"], "--cosigned", saved["cp8"]]
    # Chains, served fields, leaf order and both roots are right: without the witness's key, ok.
    status, out, _ = await parley(*base)
    assert status == 0 and "ok: every chain verifies and every checkpoint matches" in out
    status, out, _ = await parley(*base, "--witness-key", saved["witness_key"])
    assert status == 1
    assert f"line 9: recorded_too_early at event {saved['backdated']}" in out and "FAILED: 1 problem(s)" in out
    status, out, _ = await parley(*base, "--witness-key", saved["witness_key"], "--json")
    report = msgspec.json.decode(out)
    assert report["cosignatures"] == 2
    assert [(m["kind"], m["event_id"]) for m in report["mismatches"]] == [("recorded_too_early", str(saved["backdated"]))]
    # A slack wider than the hour it was backdated by lets it through: the bound is the rule's.
    status, out, _ = await parley(*base, "--witness-key", saved["witness_key"], "--slack", "7200")
    assert status == 0 and "ok: every record time lies within the bounds of 2 witness cosignature(s)" in out


async def test_an_event_recorded_after_a_checkpoint_that_contains_it_is_too_late(saved: dict) -> None:
    lines = Path(saved["export"]).read_bytes().splitlines()
    first = msgspec.json.decode(lines[0])["recorded_at"]
    an_hour_before = int(dt.datetime.fromisoformat(first.replace("Z", "+00:00")).timestamp()) - 3600
    bounds = RecordTimeBounds([Bound(5, an_hour_before, "w")])
    report = verify_export(lines, record_time=bounds)
    kinds = [(p.kind, p.line) for p in report.mismatches]
    assert [k for k in kinds if k[0] == "recorded_too_late"] == [("recorded_too_late", n) for n in range(1, 6)]


async def test_what_the_record_time_check_refuses(saved: dict, pool: asyncpg.Pool, tmp_path: Path) -> None:
    # Witness keys but no checkpoint they cosigned.
    status, _, err = await parley("audit", "verify", saved["export"], "--witness-key", saved["witness_key"])
    assert status == 2 and "--witness-key needs the checkpoints" in err
    # A checkpoint without the witness's cosignature: nothing to bound record times with.
    bare = tmp_path / "bare.note"
    bare.write_text((await Ledger(pool).checkpoint(8)).note())
    status, _, err = await parley("audit", "verify", saved["export"], "--public-key", saved["key"],
                                  "--cosigned", str(bare), "--witness-key", saved["witness_key"])
    assert status == 1 and "none of the checkpoints carries a cosignature by the given witnesses" in err
    # A cosignature line by the witness that does not verify refuses the whole note.
    note = Path(saved["cp8"]).read_text()
    line = next(line for line in note.splitlines() if line.startswith(f"\u2014 {saved['witness'].name} "))
    name, encoded = line[2:].split(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    forged = tmp_path / "forged.note"
    forged.write_text(note.replace(line, f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}"))
    status, _, err = await parley("audit", "verify", saved["export"], "--public-key", saved["key"],
                                  "--cosigned", str(forged), "--witness-key", saved["witness_key"])
    assert status == 1 and "checkpoint refused" in err and "does not verify" in err
    # An export without leaf indexes (as they were before) cannot be placed in the
    # cosigned checkpoints: its lines are refused as out of leaf order, not guessed.
    unlabelled = tmp_path / "unlabelled.ndjson"
    unlabelled.write_bytes(b"".join(
        msgspec.json.encode({**msgspec.json.decode(raw_line), "leaf_index": None}) + b"\n"
        for raw_line in Path(saved["export"]).read_bytes().splitlines()
    ))
    status, out, _ = await parley("audit", "verify", str(unlabelled), "--public-key", saved["key"],
                                  "--cosigned", saved["cp8"], "--witness-key", saved["witness_key"], "--json")
    assert status == 1 and "leaf_order" in {m["kind"] for m in msgspec.json.decode(out)["mismatches"]}

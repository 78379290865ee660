"""Receipts (issue 14 item 4): every event in a command response carries a receipt
signed by the log's key (docs/audit-format.md §7); the recorder exchanges it at
POST /ledger/receipts (no key) for an inclusion proof, and `parley audit receipt`
checks both offline. A receipt altered by a byte, or signed by another key, is
refused by the route and by the CLI."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.audit.ledger import Ledger, LedgerKey, Sealer, ledger_key, trusted_verifier
from service.audit.receipts import open_receipt, sign_receipt
from service.audit.signed_note import NoteError
from service.auth import Role, create_key
from service.cli.parley import main
from service.config import Settings
from service.store.event_store import EventStore
from tests.sealing import seal_up_to

PARTIES = [{"code": "RU", "name": "Russia"}, {"code": "UA", "name": "Ukraine"}]


async def cli(*argv: str) -> int:
    return await asyncio.to_thread(main, ["audit", "receipt", *argv])


async def test_command_responses_carry_receipts_exchanged_for_inclusion_proofs(
    api, pool: asyncpg.Pool, settings: Settings, tmp_path: Path, auditor: dict[str, str]  # noqa: ANN001
) -> None:
    recorder = {"Authorization": f"Bearer {await create_key(pool, 'desk', Role.RECORDER)}"}
    opened = await api.post("/negotiations", headers=recorder, json={
        "title": "Receipts", "slug": "receipts", "parties": PARTIES, "occurred_on": "2022-03-01"})
    assert opened.status_code == 201, opened.text
    raised = await api.post("/negotiations/receipts/commands", headers=recorder, json={"commands": [
        {"type": "issue.raised", "occurred_on": "2022-03-02", "issue": "corridor", "title": "Corridor",
         "category": "humanitarian"},
        {"type": "statement.made", "occurred_on": "2022-03-03", "speaker": "Lavrov", "party": "RU", "summary": "s"},
    ]})
    assert raised.status_code == 201, raised.text
    events = opened.json()["events"] + raised.json()["events"]
    assert len(events) >= 3
    log = trusted_verifier(settings)
    for event in events:
        receipt = open_receipt(event["receipt"], log)
        assert (str(receipt.event_id), str(receipt.stream_id), receipt.version, receipt.hash.hex()) == (
            event["id"], event["stream_id"], event["version"], event["hash"])
    # Receipts belong to command responses; other reads serve the field as null.
    listing = await api.get("/events", headers=auditor)
    assert listing.status_code == 200, listing.text
    listed = listing.json()["items"]
    assert listed and all(item["receipt"] is None for item in listed)

    everything = await pool.fetchval("SELECT count(*) FROM events")
    await seal_up_to(Sealer(pool, ledger_key(settings)), Ledger(pool), everything)
    (tmp_path / "log.vkey").write_text(log.vkey() + "\n")
    for n, event in enumerate(events):
        answer = await api.post("/ledger/receipts", content=event["receipt"].encode(),
                                headers={"Content-Type": "text/plain"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["event_id"] == event["id"]
        (tmp_path / f"r{n}").write_text(event["receipt"])
        (tmp_path / f"p{n}.json").write_bytes(answer.content)
        assert await cli(str(tmp_path / f"r{n}"), "--public-key", str(tmp_path / "log.vkey"),
                         "--proof", str(tmp_path / f"p{n}.json")) == 0
    assert await cli(str(tmp_path / "r0"), "--public-key", str(tmp_path / "log.vkey")) == 0

    # One hex digit of the hash changed; a receipt by another key: refused everywhere.
    good = events[1]["receipt"]
    digit = events[1]["hash"][10]
    altered = good.replace(events[1]["hash"], events[1]["hash"][:10] + ("0" if digit != "0" else "1")
                           + events[1]["hash"][11:])
    stranger = sign_receipt(LedgerKey(Ed25519PrivateKey.generate(), log.name),
                            (await EventStore(pool).read_stream(uuid.UUID(events[1]["stream_id"])))[0])
    for n, bad in enumerate((altered, stranger, "not a note\n")):
        answer = await api.post("/ledger/receipts", content=bad.encode(), headers={"Content-Type": "text/plain"})
        assert answer.status_code == 422 and answer.json()["type"] == "urn:parley:problem:invalid-receipt", answer.text
        with pytest.raises(NoteError):
            open_receipt(bad, log)
        (tmp_path / f"bad{n}").write_text(bad)
        assert await cli(str(tmp_path / f"bad{n}"), "--public-key", str(tmp_path / "log.vkey")) == 1
    # The proof of another event does not prove this receipt.
    assert await cli(str(tmp_path / "r0"), "--public-key", str(tmp_path / "log.vkey"),
                     "--proof", str(tmp_path / "p1.json")) == 1

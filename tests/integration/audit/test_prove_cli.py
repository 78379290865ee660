"""`parley audit prove inclusion|consistency`: saved proofs checked offline against
saved signed checkpoints, and refused when anything in them was changed."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import asyncpg
import msgspec
import pytest

from service.audit.ledger import Ledger, Sealer, ledger_key
from service.cli.parley import main
from service.config import Settings
from service.store.envelope import envelope

from tests.sealing import seal_up_to

from .conftest import Writer


async def parley(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


@pytest.fixture
async def saved(pool: asyncpg.Pool, writer: Writer, settings: Settings, tmp_path: Path) -> dict[str, Path]:
    """What an auditor keeps: the key, checkpoints at sizes 6 and 11, two proofs, an event."""
    sealer = Sealer(pool, ledger_key(settings))
    ledger = Ledger(pool)
    first = await writer.write(6)
    await seal_up_to(sealer, ledger, 6)
    (tmp_path / "checkpoint-old.json").write_text((await ledger.latest_checkpoint()).note())
    await writer.write(5)
    await seal_up_to(sealer, ledger, 11)
    (tmp_path / "checkpoint-new.json").write_text((await ledger.latest_checkpoint()).note())
    (tmp_path / "parley-key.json").write_text(ledger_key(settings).verifier.vkey() + "\n")
    event = first[3]
    (tmp_path / "event.json").write_bytes(msgspec.json.encode(envelope(event)))
    (tmp_path / "other-event.json").write_bytes(msgspec.json.encode(envelope(first[2])))
    (tmp_path / "inclusion.json").write_bytes(msgspec.json.encode(await ledger.inclusion(event.id, 11)))
    (tmp_path / "inclusion-6.json").write_bytes(msgspec.json.encode(await ledger.inclusion(event.id, 6)))
    (tmp_path / "consistency.json").write_bytes(msgspec.json.encode(await ledger.consistency(6, 11)))
    return {path.stem: path for path in tmp_path.iterdir()}


def inclusion_args(files: dict[str, Path], proof: str = "inclusion", event: str = "event") -> list[str]:
    return ["audit", "prove", "inclusion", str(files[proof]), "--checkpoint", str(files["checkpoint-new"]),
            "--public-key", str(files["parley-key"]), "--event", str(files[event])]


def consistency_args(files: dict[str, Path], proof: str = "consistency") -> list[str]:
    return ["audit", "prove", "consistency", str(files[proof]), "--checkpoint", str(files["checkpoint-new"]),
            "--public-key", str(files["parley-key"]), "--older-checkpoint", str(files["checkpoint-old"])]


def flip_first_hash(path: Path) -> None:
    proof = msgspec.json.decode(path.read_bytes())
    raw = bytearray(base64.b64decode(proof["proof"][0]))
    raw[0] ^= 1
    proof["proof"][0] = base64.b64encode(bytes(raw)).decode()
    path.write_bytes(msgspec.json.encode(proof))


async def test_saved_proofs_verify_offline(saved: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert await parley(*inclusion_args(saved)) == 0
    assert "is leaf 3 of the tree of size 11" in capsys.readouterr().out
    assert await parley(*consistency_args(saved)) == 0
    assert "the tree of size 6 is a prefix of the tree of size 11" in capsys.readouterr().out


async def test_a_changed_proof_or_another_event_fails(
    saved: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert await parley(*inclusion_args(saved, event="other-event")) == 2  # not the proof's event
    assert "no event" in capsys.readouterr().err
    # The other event's hash under the proof's id: the leaf no longer leads to the root.
    other = msgspec.json.decode(saved["other-event"].read_bytes())
    mine = msgspec.json.decode(saved["event"].read_bytes())
    saved["event"].write_bytes(msgspec.json.encode({**mine, "hash": other["hash"]}))
    assert await parley(*inclusion_args(saved)) == 1
    assert "FAILED: inclusion proof does not lead to the expected root" in capsys.readouterr().out
    saved["event"].write_bytes(msgspec.json.encode(mine))

    assert await parley(*inclusion_args(saved, proof="inclusion-6")) == 1  # proof for another checkpoint
    assert "&tree_size=11" in capsys.readouterr().out

    flip_first_hash(saved["inclusion"])
    assert await parley(*inclusion_args(saved)) == 1
    flip_first_hash(saved["consistency"])
    assert await parley(*consistency_args(saved)) == 1
    assert "FAILED: consistency proof" in capsys.readouterr().out


async def test_the_checkpoints_must_be_signed_by_the_key(
    saved: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    forged = saved["checkpoint-old"].read_text().replace("\n6\n", "\n7\n")
    saved["checkpoint-old"].write_text(forged)
    assert await parley(*consistency_args(saved)) == 2
    assert "older checkpoint" in capsys.readouterr().err

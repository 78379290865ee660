"""The witness's rules (C2SP tlog-witness), in process: it cosigns a log's first
checkpoint and every consistent successor, and refuses the rest with the spec's
status codes, without moving its state."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.audit import merkle
from service.audit.signed_note import (
    CosignatureVerifier,
    NoteVerifier,
    TreeHead,
    checkpoint_body,
    raw_public_key,
    sign_note,
)
from service.audit.witness import (
    StateFile,
    Witness,
    WitnessRefusal,
    add_checkpoint_request,
    cosignature_bytes,
    read_cosignature,
)

ORIGIN = "parley.test/log"


class Log:
    """A log in memory that signs its checkpoints."""

    def __init__(self, seed: str = "a") -> None:
        self.key = Ed25519PrivateKey.generate()
        self.verifier = NoteVerifier(ORIGIN, raw_public_key(self.key.public_key()))
        self.leaves: list[bytes] = []
        self.seed = seed

    def grow(self, n: int) -> None:
        start = len(self.leaves)
        self.leaves += [merkle.leaf_hash(hashlib.sha256(f"{self.seed}{i}".encode()).digest()) for i in range(start, start + n)]

    def note(self, size: int | None = None, key: Ed25519PrivateKey | None = None) -> str:
        size = len(self.leaves) if size is None else size
        head = TreeHead(ORIGIN, size, merkle.root(self.leaves[:size]))
        return sign_note(checkpoint_body(head), ORIGIN, key or self.key)

    def request(self, old: int, size: int | None = None) -> bytes:
        size = len(self.leaves) if size is None else size
        return add_checkpoint_request(old, merkle.consistency_proof(self.leaves[:size], old), self.note(size))


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def witness(tmp_path: Path, log: Log) -> Witness:
    now = iter(range(1_700_000_000, 1_800_000_000))
    return Witness(Ed25519PrivateKey.generate(), StateFile(tmp_path / "state.json"), [log.verifier], clock=lambda: next(now))


async def refused(witness: Witness, body: bytes) -> WitnessRefusal:
    with pytest.raises(WitnessRefusal) as caught:
        await witness.add_checkpoint(body)
    return caught.value


async def test_cosigns_the_first_checkpoint_and_every_consistent_successor(witness: Witness, log: Log) -> None:
    log.grow(5)
    first = await witness.add_checkpoint(log.request(0))
    cosigned = read_cosignature(first, log.note(), witness.verifier)
    assert cosigned.name == witness.name and cosigned.timestamp == 1_700_000_000
    assert len(cosignature_bytes(first, witness.verifier)) == 72
    log.grow(300)
    second = read_cosignature(await witness.add_checkpoint(log.request(5)), log.note(), witness.verifier)
    assert second.timestamp == 1_700_000_001
    assert witness.state.logs[ORIGIN].size == 305
    # The same checkpoint again is cosigned again (a fresh time on an unchanged log).
    again = read_cosignature(await witness.add_checkpoint(log.request(305)), log.note(), witness.verifier)
    assert again.timestamp == 1_700_000_002


async def test_a_forked_log_is_refused_and_the_state_stays(witness: Witness, log: Log) -> None:
    log.grow(8)
    await witness.add_checkpoint(log.request(0))
    fork = Log(seed="b")
    fork.key, fork.verifier = log.key, log.verifier  # the same log key signs another history
    fork.leaves = log.leaves[:4] + []
    fork.grow(8)
    refusal = await refused(witness, add_checkpoint_request(8, merkle.consistency_proof(fork.leaves, 8), fork.note()))
    assert refusal.status == 422
    same_size = await refused(witness, add_checkpoint_request(8, [], fork.note(8)))
    assert same_size.status == 409 and same_size.size is None
    assert witness.state.logs[ORIGIN].size == 8 and witness.state.logs[ORIGIN].root == merkle.root(log.leaves)


async def test_refusals_carry_the_spec_status(witness: Witness, log: Log, tmp_path: Path) -> None:
    log.grow(4)
    await witness.add_checkpoint(log.request(0))
    log.grow(4)
    stale = await refused(witness, log.request(0))
    assert (stale.status, stale.size) == (409, 4)
    assert (await refused(witness, add_checkpoint_request(6, [], log.note(5)))).status == 400  # old above the size
    other_key = Ed25519PrivateKey.generate()
    foreign = add_checkpoint_request(4, merkle.consistency_proof(log.leaves, 4), log.note(key=other_key))
    assert (await refused(witness, foreign)).status == 403
    unknown_body = log.request(4).replace(ORIGIN.encode(), b"elsewhere.test/log")
    assert (await refused(witness, unknown_body)).status == 404
    for malformed in (b"old 04\n\n" + log.note().encode(), b"new 4\n\n" + log.note().encode(), b"old 4\n",
                      b"old 4\nnot-base64\n\n" + log.note().encode()):
        assert (await refused(witness, malformed)).status == 400
    assert witness.state.logs[ORIGIN].size == 4


async def test_a_note_with_one_bad_signature_by_the_log_key_is_refused(witness: Witness, log: Log) -> None:
    log.grow(3)
    good = log.note()
    body, _, line = good.rpartition("\n\n")
    forged_line = line[:-6] + ("AAAA" if line[-6:-2] != "AAAA" else "BBBB") + line[-2:]
    both = f"{body}\n\n{line}{forged_line}"
    refusal = await refused(witness, add_checkpoint_request(0, [], both))
    assert refusal.status == 403 and "does not verify" in refusal.detail


async def test_state_survives_a_restart_and_is_held_by_one_process(tmp_path: Path, log: Log) -> None:
    key = Ed25519PrivateKey.generate()
    state = StateFile(tmp_path / "state.json")
    log.grow(10)
    await Witness(key, state, [log.verifier]).add_checkpoint(log.request(0))
    with pytest.raises(RuntimeError):
        StateFile(tmp_path / "state.json")
    state.close()
    reopened = StateFile(tmp_path / "state.json")
    assert reopened.logs[ORIGIN].size == 10
    witness = Witness(key, reopened, [log.verifier])
    assert isinstance(witness.verifier, CosignatureVerifier)
    assert (await refused(witness, log.request(0))).size == 10

"""Offline audit of an NDJSON export, with no database: `parley audit verify FILE`.

Everything is recomputed from the file itself, one line at a time, so memory is
O(streams), not O(events):

- each line is an `ExportedEvent`; its `body` is the exact hashed bytes;
- every stream's chain: `hash = sha256(previous hash || body)` from the zero hash,
  versions 1, 2, 3... with none missing;
- the body agrees with the envelope's fields (what a reader sees is what was hashed);
- the lines are in the log's commit order (checkpoint tokens strictly increasing);
- the Merkle root of the first N lines (leaf = sha256(0x00 || hash)) equals the
  root of a signed checkpoint of size N, and of an older one too: both roots from
  the same lines prove the older log is a prefix of the newer (consistency).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from service.audit import merkle
from service.audit.served import disagreements
from service.audit.signed_note import (
    NoteError,
    NoteVerifier,
    TreeHead,
    open_checkpoint,
    split_note,
)
from service.store.canonical import ZERO_HASH, canonical_decoder, chain_hash
from service.store.envelope import ExportedEvent


class ExportProblem(msgspec.Struct, kw_only=True, omit_defaults=True):
    kind: str  # malformed_line | hash_mismatch | body_mismatch | version_gap | out_of_order | duplicate_event
    detail: str
    line: int  # 1-based line number in the file
    event_id: uuid.UUID | None = None
    stream_id: uuid.UUID | None = None
    version: int | None = None
    expected_hash: str | None = None
    stored_hash: str | None = None


class RootCheck(msgspec.Struct, kw_only=True):
    role: str  # "checkpoint" | "older checkpoint"
    origin: str
    tree_size: int
    root: bytes  # the signed root
    computed_root: bytes | None  # from the export's first tree_size lines; None if it is shorter
    matches: bool


class ExportReport(msgspec.Struct, kw_only=True):
    ok: bool
    events: int
    streams: int
    mismatch_count: int
    first_mismatch: ExportProblem | None
    mismatches: list[ExportProblem]
    roots: list[RootCheck]


MAX_LISTED = 100

_exported = msgspec.json.Decoder(ExportedEvent)


def _checkpoint_order(token: str) -> tuple[int, int] | None:
    txid, _, position = token.partition(".")
    return (int(txid), int(position)) if txid.isdigit() and position.isdigit() else None


class _Link(msgspec.Struct):
    line: int
    event_id: uuid.UUID
    body: bytes
    stored: bytes


class _Chain:
    """One stream's chain, checked in version order although the lines come in
    commit order: a transaction's txid is taken at its first write, before it
    waits for the stream's head, so under concurrent writers a stream's version 6
    can precede its version 5 in the log. An event that comes early waits here
    (only those: memory stays small) until its predecessor arrives."""

    def __init__(self) -> None:
        self.next_version = 1
        self.previous = ZERO_HASH
        self.waiting: dict[int, _Link] = {}

    def drain(self, stream_id: uuid.UUID, found: Any) -> None:
        while self.next_version in self.waiting:
            link = self.waiting.pop(self.next_version)
            expected = chain_hash(self.previous, link.body)
            if expected != link.stored:
                found(
                    ExportProblem(
                        kind="hash_mismatch",
                        detail="the hash is not sha256(previous hash || body): the event was altered",
                        line=link.line,
                        event_id=link.event_id,
                        stream_id=stream_id,
                        version=self.next_version,
                        expected_hash=expected.hex(),
                        stored_hash=link.stored.hex(),
                    )
                )
            # Chain on from the stored hash, so each broken link is named on its own.
            self.previous = link.stored
            self.next_version += 1

    def close(self, stream_id: uuid.UUID, found: Any) -> None:
        """At the end of the file: whatever still waits follows a missing version."""
        while self.waiting:
            version = min(self.waiting)
            link = self.waiting.pop(version)
            missing = f"{self.next_version}" + (f"-{version - 1}" if version > self.next_version + 1 else "")
            found(
                ExportProblem(
                    kind="version_gap",
                    detail=f"version(s) {missing} of the stream are missing",
                    line=link.line,
                    event_id=link.event_id,
                    stream_id=stream_id,
                    version=version,
                )
            )
            # Its own link cannot be checked (its predecessor is missing); the next ones can.
            self.next_version, self.previous = version + 1, link.stored
            self.drain(stream_id, found)


def verify_export(lines: Iterable[bytes], checkpoints: Sequence[tuple[str, TreeHead]] = ()) -> ExportReport:
    """Check an export line by line; `checkpoints` are (role, verified tree head)."""
    problems: list[ExportProblem] = []
    count = 0

    def found(problem: ExportProblem) -> None:
        nonlocal count
        count += 1
        if len(problems) < MAX_LISTED:
            problems.append(problem)

    chains: dict[uuid.UUID, _Chain] = {}
    seen_ids: set[uuid.UUID] = set()
    last_place: tuple[int, int] | None = None
    tree = merkle.CompactRange()
    wanted = {head.tree_size for _, head in checkpoints}
    roots: dict[int, bytes] = {0: merkle.EMPTY_ROOT} if 0 in wanted else {}
    events = 0

    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            event = _exported.decode(raw)
            stored = bytes.fromhex(event.hash)
        except (msgspec.DecodeError, ValueError) as error:
            found(ExportProblem(kind="malformed_line", detail=f"not an exported event: {error}", line=number))
            continue
        events += 1
        where = dict(line=number, event_id=event.id, stream_id=event.stream_id, version=event.version)

        place = _checkpoint_order(event.checkpoint)
        if place is None or (last_place is not None and place <= last_place):
            found(ExportProblem(kind="out_of_order", detail="the line is out of the log's commit order", **where))
        else:
            last_place = place
        if event.id in seen_ids:
            found(ExportProblem(kind="duplicate_event", detail="the event appears twice", **where))
        seen_ids.add(event.id)

        body = event.body.encode()
        chain = chains.setdefault(event.stream_id, _Chain())
        if event.version < chain.next_version or event.version in chain.waiting:
            found(ExportProblem(kind="out_of_order", detail=f"version {event.version} of the stream appears again",
                                **where))
        else:
            chain.waiting[event.version] = _Link(number, event.id, body, stored)
            chain.drain(event.stream_id, found)
        try:
            disagreeing = disagreements(event, canonical_decoder.decode(body))
        except msgspec.DecodeError:
            disagreeing = ["body"]
        if disagreeing:
            found(
                ExportProblem(
                    kind="body_mismatch",
                    detail=f"the served fields disagree with the hashed body: {', '.join(disagreeing)}",
                    **where,
                )
            )

        tree.append(merkle.leaf_hash(stored))
        if tree.size in wanted:
            roots[tree.size] = tree.root()

    for stream_id, chain in chains.items():
        chain.close(stream_id, found)
    problems.sort(key=lambda problem: problem.line)

    checks = []
    for role, head in checkpoints:
        computed = roots.get(head.tree_size)
        checks.append(
            RootCheck(
                role=role,
                origin=head.origin,
                tree_size=head.tree_size,
                root=head.root,
                computed_root=computed,
                matches=computed == head.root,
            )
        )
    return ExportReport(
        ok=count == 0 and all(check.matches for check in checks),
        events=events,
        streams=len(chains),
        mismatch_count=count,
        first_mismatch=problems[0] if problems else None,
        mismatches=problems,
        roots=checks,
    )


# -- reading what the auditor saved ---------------------------------------------


def read_note(text: str) -> str:
    """A checkpoint as saved: the signed note itself, or the JSON of
    `GET /ledger/checkpoints/…` (its `note` member)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            note = msgspec.json.decode(stripped.encode(), type=dict[str, Any]).get("note")
        except msgspec.DecodeError as error:
            raise NoteError("the checkpoint file is neither a signed note nor checkpoint JSON") from error
        if not isinstance(note, str):
            raise NoteError("the checkpoint JSON has no `note`")
        return note
    return text


def read_verifier(text: str, note: str) -> NoteVerifier:
    """The public key as saved: a verifier key (`name+id+key`), the JSON of
    `GET /ledger/public-key`, or a PEM public key (named after the note's origin)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            vkey = msgspec.json.decode(stripped.encode(), type=dict[str, Any]).get("vkey")
        except msgspec.DecodeError as error:
            raise NoteError("the public key file is not readable JSON") from error
        if not isinstance(vkey, str):
            raise NoteError("the public key JSON has no `vkey`")
        return NoteVerifier.from_vkey(vkey)
    if stripped.startswith("-----BEGIN"):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        from service.audit.signed_note import raw_public_key

        key = load_pem_public_key(stripped.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise NoteError("the PEM public key is not Ed25519")
        body, _ = split_note(note)
        return NoteVerifier(body.split("\n", 1)[0], raw_public_key(key))
    return NoteVerifier.from_vkey(stripped)


def verified_head(checkpoint_text: str, key_text: str) -> TreeHead:
    note = read_note(checkpoint_text)
    return open_checkpoint(note, read_verifier(key_text, note))


# -- replay: service/audit/replay.py (re-exported here for its older callers) ----

from service.audit.replay import (
    ReplayedIssue,
    ReplayedNegotiation,
    differences,
    replay_export,
    replay_views,
)

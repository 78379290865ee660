"""Offline audit of an NDJSON export, with no database: `parley audit verify FILE`.

Everything is recomputed from the file itself, one line at a time, so memory is
O(streams), not O(events):

- each line is an `ExportedEvent`; its `body` is the exact hashed bytes;
- every stream's chain: `hash = sha256(previous hash || body)` from the zero hash,
  versions 1, 2, 3... with none missing;
- the body agrees with the envelope's fields (what a reader sees is what was hashed);
- the lines are in the log's commit order (checkpoint tokens strictly increasing)
  and in leaf order: `leaf_index` 0, 1, 2… then `null` for the unsealed events
  (in an export filtered to one negotiation, increasing with gaps);
- the Merkle root of the first N lines (leaf = sha256(0x00 || hash)) equals the
  root of a signed checkpoint of size N, and of an older one too: both roots from
  the same lines prove the older log is a prefix of the newer (consistency);
- with witnesses' cosigned checkpoints, each event's hashed `recorded_at` against
  them at its `leaf_index` (service.audit.record_time, docs/audit-format.md §9):
  a backdated insert, correctly chained and sealed, is `recorded_too_early`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

import datetime as dt

from service.audit import merkle
from service.audit.record_time import RecordTimeBounds
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
    # malformed_line | hash_mismatch | body_mismatch | version_gap | out_of_order | duplicate_event
    # | leaf_order | recorded_too_early | recorded_too_late
    kind: str
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
    cosignatures: int = 0  # witness cosignatures that bounded record times (0: not checked)


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


def verify_export(
    lines: Iterable[bytes],
    checkpoints: Sequence[tuple[str, TreeHead]] = (),
    *,
    record_time: RecordTimeBounds | None = None,
    filtered: bool = False,
) -> ExportReport:
    """Check an export line by line; `checkpoints` are (role, verified tree head),
    whose roots the lines must give; `record_time` the bounds of the witnesses'
    cosigned checkpoints. `filtered`: the export is of one negotiation, so its leaf
    indexes may skip (no root can be computed from it: pass no checkpoints)."""
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
    next_leaf, unsealed_from = 0, None  # the leaf the next sealed line must carry; the first unsealed line

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
        if event.leaf_index is None:
            unsealed_from = unsealed_from or number
        elif (
            unsealed_from is not None
            or event.leaf_index < next_leaf
            or (not filtered and event.leaf_index != next_leaf)
        ):
            after = f"after the unsealed line {unsealed_from}" if unsealed_from is not None else f"({next_leaf} due)"
            found(ExportProblem(kind="leaf_order", detail=f"leaf_index {event.leaf_index} {after}: the lines are "
                                "not in the tree's leaf order", **where))
        # Resume after the highest leaf seen, so one line out of place is named alone.
        if event.leaf_index is not None:
            next_leaf = max(next_leaf, event.leaf_index + 1)
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
            hashed = canonical_decoder.decode(body)
            disagreeing = disagreements(event, hashed)
        except msgspec.DecodeError:
            hashed, disagreeing = None, ["body"]
        if disagreeing:
            found(
                ExportProblem(
                    kind="body_mismatch",
                    detail=f"the served fields disagree with the hashed body: {', '.join(disagreeing)}",
                    **where,
                )
            )

        if record_time is not None and hashed is not None:
            try:  # the hashed time, never the served one
                recorded = dt.datetime.fromisoformat(hashed.recorded_at)
            except ValueError:
                recorded = None  # reported by the served-fields check
            broken = record_time.check(event.leaf_index, recorded) if recorded is not None else None
            if broken is not None:
                found(ExportProblem(kind=broken[0], detail=broken[1], **where))

        tree.append(merkle.leaf_hash(stored))
        if tree.size in wanted:
            roots[tree.size] = tree.root()

    for stream_id, chain in chains.items():
        chain.close(stream_id, found)
    # A signed checkpoint holds more leaves than the export labels as sealed: its
    # lines' leaf indexes (what the record-time check reads) are not the tree's.
    contained = max((head.tree_size for _, head in checkpoints), default=0)
    if contained > next_leaf and unsealed_from is not None:
        found(ExportProblem(kind="leaf_order", line=unsealed_from, detail=f"the line has no leaf_index, but a "
                            f"signed checkpoint holds {contained} leaves and the export labels {next_leaf}"))
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


# -- reading what the auditor saved: service/audit/saved.py (re-exported here) ----

from service.audit.saved import read_note, read_verifier, read_witness_keys, verified_head  # noqa: E402,F401


# -- replay: service/audit/replay.py (re-exported here for its older callers) ----

from service.audit.replay import (
    ReplayedIssue,
    ReplayedNegotiation,
    differences,
    replay_export,
    replay_views,
)

"""`GET /audit/verify`: the whole record recomputed from the database.

- every stream's chain from the stored bodies, link by link, in version order;
- every served field of every event against its hashed body (service.audit.served):
  a column changed on its own (`recorded_at`, `recorded_by`, `note`…) shows;
- the stream heads (a deleted last event);
- the ledger (service.audit.seals): every leaf against the event it seals, the
  root of every stored checkpoint against the tree recomputed from the leaves,
  and its signature against the configured public key, never a stored one;
- with witnesses' keys, every event's hashed record time against the stored
  cosignatures of those witnesses (service.audit.record_time): a backdated insert
  shows.

Each problem is named at the event where it shows, so one altered event is named
alone rather than with every event after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec

from service.audit.findings import Findings, Mismatch
from service.audit.record_time import RecordTimeCheck
from service.audit.seals import verify_ledger
from service.audit.served import served_disagreements
from service.audit.signed_note import CosignatureVerifier, NoteVerifier
from service.store.canonical import ZERO_HASH, chain_hash
from service.store.envelope import envelope
from service.store.event_store import EventStore, StoredEvent


class VerifyReport(msgspec.Struct, kw_only=True):
    ok: bool
    streams: int
    events: int
    sealed: int  # events covered by the ledger's leaves
    # Stored checkpoints whose root was recomputed and whose signature was checked.
    checkpoints: int
    # The configured key the checkpoints were checked with (C2SP verifier key).
    trusted_key: str | None
    mismatch_count: int
    first_mismatch: Mismatch | None
    # The first problems found (at most MAX_LISTED), in the order they were found.
    mismatches: list[Mismatch]
    # The configured witnesses' keys (PARLEY_WITNESSES) whose stored cosignatures
    # bound every event's record time, and how many of their cosignatures verified.
    witnesses: list[str] = []
    cosignatures: int = 0


async def verify_store(
    store: EventStore,
    trusted: NoteVerifier | None = None,
    *,
    page_size: int = 2000,
    witnesses: Sequence[CosignatureVerifier] = (),
) -> VerifyReport:
    """Recompute everything; `trusted` is the log's configured public key (without
    it, checkpoint roots are still recomputed but signatures cannot be checked);
    `witnesses` the keys whose cosignatures bound record times."""
    findings = Findings()
    record_time = await RecordTimeCheck.load(store.pool, witnesses, findings) if witnesses else None
    heads: dict[uuid.UUID, tuple[int, bytes]] = {}
    events = 0
    after: tuple[uuid.UUID, int] = (uuid.UUID(int=0), 0)
    while True:
        page = await store.chain_events(after, page_size)
        if not page:
            break
        for event in page:
            events += 1
            _check_link(event, heads, findings)
        if record_time is not None:
            await record_time.check_page(page, findings)
        after = (page[-1].stream_id, page[-1].version)

    async for stream in store.stream_heads():
        seen_version, seen_hash = heads.get(stream.stream_id, (0, ZERO_HASH))
        if (stream.version, stream.head_hash) != (seen_version, seen_hash):
            findings.add(
                Mismatch(
                    kind="head_mismatch",
                    detail=(
                        f"the stream's head is version {stream.version} but its events end at "
                        f"version {seen_version}: an event is missing or was altered at the end"
                    ),
                    stream_id=stream.stream_id,
                    version=stream.version,
                    expected_hash=stream.head_hash.hex(),
                    stored_hash=seen_hash.hex(),
                )
            )

    sealed, checkpoints = await verify_ledger(store, findings, trusted, page_size)
    return VerifyReport(
        ok=findings.count == 0,
        streams=len(heads),
        events=events,
        sealed=sealed,
        checkpoints=checkpoints,
        trusted_key=trusted.vkey() if trusted else None,
        mismatch_count=findings.count,
        first_mismatch=findings.listed[0] if findings.listed else None,
        mismatches=findings.listed,
        witnesses=[w.vkey() for w in witnesses],
        cosignatures=record_time.bounds.count if record_time else 0,
    )


def _check_link(event: StoredEvent, heads: dict[uuid.UUID, tuple[int, bytes]], findings: Findings) -> None:
    stream_id, version, stored = event.stream_id, event.version, event.hash
    last_version, previous = heads.get(stream_id, (0, ZERO_HASH))
    where = dict(event_id=event.id, stream_id=stream_id, version=version, position=event.position)
    if version > last_version + 1:
        missing = f"{last_version + 1}" if version == last_version + 2 else f"{last_version + 1}-{version - 1}"
        findings.add(Mismatch(kind="version_gap", detail=f"version(s) {missing} of the stream are missing", **where))
    elif version <= last_version:
        findings.add(
            Mismatch(kind="out_of_order", detail=f"version {version} comes after version {last_version}", **where)
        )
    expected = chain_hash(previous, event.body)
    if expected != stored and version == last_version + 1:
        findings.add(
            Mismatch(
                kind="hash_mismatch",
                detail="the stored hash is not sha256(previous hash || body): the event was altered",
                expected_hash=expected.hex(),
                stored_hash=stored.hex(),
                **where,
            )
        )
    # What the routes serve of this row, field by field, against what was hashed.
    wrong = served_disagreements(envelope(event), event.body)
    if wrong == ["body"]:
        findings.add(Mismatch(kind="body_mismatch", detail="the hashed body is not a readable event", **where))
    elif wrong:
        findings.add(
            Mismatch(
                kind="body_mismatch",
                detail=f"the served fields disagree with the hashed body: {', '.join(wrong)}",
                **where,
            )
        )
    heads[stream_id] = (max(version, last_version), stored)

"""What auditors ask of the database: the NDJSON export of the log, and a full
recomputation of every hash chain and of the ledger's leaves.

Every row comes through the event store (the global log through its gap-free
reader); a row whose body no longer parses is still served, with the queryable
copy of its data: an audit must be able to show a damaged record, not fail on it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec

from service.audit.merkle import leaf_hash
from service.db import CONNECTION_FAILURES
from service.store.canonical import ZERO_HASH, chain_hash
from service.store.envelope import exported
from service.store.event_store import EVERYTHING, START, ChainLink, EventStore, LogFilter

# -- export ----------------------------------------------------------------------

_line_encoder = msgspec.json.Encoder()


async def export_lines(
    store: EventStore, where: LogFilter = EVERYTHING, *, page_size: int = 500, fallback: EventStore | None = None
) -> AsyncIterator[bytes]:
    """NDJSON lines (one `ExportedEvent` each) in commit order, a page at a time, so
    memory stays constant whatever the size of the log. The export stops at the
    head of the log as it was when it began: a finite, verifiable prefix.

    `store` may read a hot standby and `fallback` the primary: if the standby goes
    away mid-export, the export carries on from the primary after the last event
    sent (the primary holds everything any standby has replayed)."""
    until = await store.head()
    after = START
    while until != START:
        try:
            page = await store.read_filtered(after, page_size, where, until=until, serve_damaged=True)
        except CONNECTION_FAILURES:
            if fallback is None or fallback is store:
                raise
            store = fallback
            continue
        if not page:
            return
        chunk = bytearray()
        for event in page:
            _line_encoder.encode_into(exported(event), chunk, -1)
            chunk += b"\n"
        yield bytes(chunk)
        after = page[-1].checkpoint
        if len(page) < page_size:
            return


# -- verification ----------------------------------------------------------------


class Mismatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One thing wrong with the record, naming the event where it shows."""

    kind: str  # hash_mismatch | body_mismatch | version_gap | out_of_order | head_mismatch |
    #            missing_event | ledger_mismatch | ledger_order
    detail: str
    event_id: uuid.UUID | None = None
    stream_id: uuid.UUID | None = None
    version: int | None = None
    position: int | None = None
    expected_hash: str | None = None  # hex
    stored_hash: str | None = None  # hex


class VerifyReport(msgspec.Struct, kw_only=True):
    ok: bool
    streams: int
    events: int
    sealed: int  # events covered by the ledger's leaves
    mismatch_count: int
    first_mismatch: Mismatch | None
    # The first problems found (at most MAX_LISTED), in the order they were found.
    mismatches: list[Mismatch]


MAX_LISTED = 100


class _Findings:
    def __init__(self) -> None:
        self.count = 0
        self.listed: list[Mismatch] = []

    def add(self, problem: Mismatch) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(problem)


class _BodyKeys(msgspec.Struct):
    id: uuid.UUID
    stream_id: uuid.UUID
    version: int
    type: str


_body_keys = msgspec.json.Decoder(_BodyKeys)

# Leaves are checked a page at a time against the events they seal.
_LEAVES_SQL = """
    SELECT "index", event_id, leaf_hash FROM ledger_leaves WHERE "index" >= $1 ORDER BY "index" LIMIT $2
"""


async def verify_store(store: EventStore, *, page_size: int = 2000) -> VerifyReport:
    """Recompute every stream's chain from the stored bytes, in version order.

    Each link is checked on its own (an event's hash against its predecessor's
    *stored* hash), so one altered event is named alone rather than with every
    event after it. Then the stream heads (a deleted last event) and the ledger's
    leaves (a deleted, altered or reordered event that was already sealed)."""
    findings = _Findings()
    heads: dict[uuid.UUID, tuple[int, bytes]] = {}
    events = 0
    after: tuple[uuid.UUID, int] = (uuid.UUID(int=0), 0)
    while True:
        links = await store.chain_links(after, page_size)
        if not links:
            break
        for link in links:
            events += 1
            _check_link(link, heads, findings)
        after = (links[-1].stream_id, links[-1].version)

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

    sealed = await _verify_leaves(store, findings, page_size)
    return VerifyReport(
        ok=findings.count == 0,
        streams=len(heads),
        events=events,
        sealed=sealed,
        mismatch_count=findings.count,
        first_mismatch=findings.listed[0] if findings.listed else None,
        mismatches=findings.listed,
    )


def _check_link(link: ChainLink, heads: dict[uuid.UUID, tuple[int, bytes]], findings: _Findings) -> None:
    stream_id, version, stored = link.stream_id, link.version, link.hash
    last_version, previous = heads.get(stream_id, (0, ZERO_HASH))
    where = dict(event_id=link.id, stream_id=stream_id, version=version, position=link.position)
    if version > last_version + 1:
        missing = f"{last_version + 1}" if version == last_version + 2 else f"{last_version + 1}-{version - 1}"
        findings.add(Mismatch(kind="version_gap", detail=f"version(s) {missing} of the stream are missing", **where))
    elif version <= last_version:
        findings.add(
            Mismatch(kind="out_of_order", detail=f"version {version} comes after version {last_version}", **where)
        )
    expected = chain_hash(previous, link.body)
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
    try:
        keys = _body_keys.decode(link.body)
        columns = (link.id, stream_id, version, link.type)
        if (keys.id, keys.stream_id, keys.version, keys.type) != columns:
            findings.add(Mismatch(kind="body_mismatch", detail="the hashed body disagrees with the row's columns", **where))
    except msgspec.DecodeError:
        findings.add(Mismatch(kind="body_mismatch", detail="the hashed body is not a readable event", **where))
    heads[stream_id] = (max(version, last_version), stored)


async def _verify_leaves(store: EventStore, findings: _Findings, page_size: int) -> int:
    sealed = 0
    previous: tuple[int, int] | None = None
    while True:
        leaves = await store.pool.fetch(_LEAVES_SQL, sealed, page_size)
        if not leaves:
            return sealed
        places = await store.sealed_places([leaf["event_id"] for leaf in leaves])
        for leaf in leaves:
            sealed += 1
            event = places.get(leaf["event_id"])
            if event is None:
                findings.add(
                    Mismatch(
                        kind="missing_event",
                        detail=f"leaf {leaf['index']} of the ledger seals an event that is no longer stored",
                        event_id=leaf["event_id"],
                    )
                )
                continue
            where = dict(
                event_id=leaf["event_id"], stream_id=event.stream_id, version=event.version, position=event.position
            )
            if leaf_hash(event.hash) != leaf["leaf_hash"]:
                findings.add(
                    Mismatch(
                        kind="ledger_mismatch",
                        detail=f"the event's hash is not the one sealed in leaf {leaf['index']}",
                        **where,
                    )
                )
            place = (event.txid, event.position)
            if previous is not None and place <= previous:
                findings.add(
                    Mismatch(
                        kind="ledger_order",
                        detail=f"leaf {leaf['index']} is out of the log's commit order",
                        **where,
                    )
                )
            previous = place

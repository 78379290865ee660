"""What auditors ask of the database: the filtered global log, the NDJSON export,
and a full recomputation of every hash chain and of the ledger's leaves.

Rows are read here with the auditor's own queries, and a row whose body no
longer parses is still served (the store's row converter given the queryable
copy of the data): an audit must be able to show a damaged record, not fail on it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec

from service.store.canonical import ZERO_HASH, body_data, chain_hash
from service.store.envelope import exported
from service.audit.merkle import leaf_hash
from service.store.event_store import START, Checkpoint, StoredEvent, row_to_event

# -- the global log --------------------------------------------------------------


class LogFilter(msgspec.Struct, frozen=True, kw_only=True):
    negotiation_id: uuid.UUID | None = None
    stream_id: uuid.UUID | None = None
    types: tuple[str, ...] = ()
    recorded_after: dt.datetime | None = None  # inclusive
    recorded_before: dt.datetime | None = None  # exclusive


_LOG_SQL = """
    SELECT position, txid::text::bigint AS txid, id, stream_id, stream_type, negotiation_id,
        version, type, schema_version, body, data::text AS data_text, occurred_on, recorded_at,
        recorded_by, claimed_by, source::text AS source, note, correlation_id, causation_id, hash
    FROM events
    WHERE (txid, position) > ($1::text::xid8, $2)
      AND txid < pg_snapshot_xmin(pg_current_snapshot())
      AND ($4::text IS NULL OR (txid, position) <= ($4::text::xid8, $5))
      AND ($6::uuid IS NULL OR negotiation_id = $6)
      AND ($7::uuid IS NULL OR stream_id = $7)
      AND ($8::text[] IS NULL OR type = ANY($8))
      AND ($9::timestamptz IS NULL OR recorded_at >= $9)
      AND ($10::timestamptz IS NULL OR recorded_at < $10)
    -- events.txid, not the bigint txid output column: that would sort the whole log
    ORDER BY events.txid, events.position
    LIMIT $3
"""


def _event(row: asyncpg.Record) -> StoredEvent:
    try:
        # The fact's fields exactly as hashed, as the store serves them.
        data = body_data(row["body"])
    except msgspec.DecodeError:
        data = row["data_text"].encode()  # a damaged body: show the queryable copy instead
    return row_to_event(row, data)


async def read_log(
    pool: asyncpg.Pool,
    after: Checkpoint = START,
    limit: int = 100,
    where: LogFilter = LogFilter(),
    *,
    until: Checkpoint | None = None,
) -> list[StoredEvent]:
    """A page of the gap-free global log in commit order (see service.store.event_store), with
    the auditor's filters; `until` bounds it to a checkpoint (inclusive)."""
    rows = await pool.fetch(
        _LOG_SQL,
        str(after.txid),
        after.position,
        limit,
        str(until.txid) if until is not None else None,
        until.position if until is not None else 0,
        where.negotiation_id,
        where.stream_id,
        list(where.types) if where.types else None,
        where.recorded_after,
        where.recorded_before,
    )
    return [_event(r) for r in rows]


async def log_head(pool: asyncpg.Pool) -> Checkpoint:
    row = await pool.fetchrow(
        """
        SELECT txid::text::bigint AS txid, position FROM events
        WHERE txid < pg_snapshot_xmin(pg_current_snapshot())
        ORDER BY events.txid DESC, events.position DESC LIMIT 1
        """
    )
    return Checkpoint(row["txid"], row["position"]) if row else START


# -- export ----------------------------------------------------------------------

_line_encoder = msgspec.json.Encoder()


async def export_lines(
    pool: asyncpg.Pool, where: LogFilter = LogFilter(), *, page_size: int = 500
) -> AsyncIterator[bytes]:
    """NDJSON lines (one `ExportedEvent` each) in commit order, a page at a time, so
    memory stays constant whatever the size of the log. The export stops at the
    head of the log as it was when it began: a finite, verifiable prefix."""
    until = await log_head(pool)
    after = START
    while until != START:
        page = await read_log(pool, after, page_size, where, until=until)
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


async def count_events(pool: asyncpg.Pool, where: LogFilter = LogFilter()) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM events WHERE ($1::uuid IS NULL OR negotiation_id = $1)", where.negotiation_id
    )


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

# Chains are walked stream by stream in version order. Not in the log's
# (txid, position) order: a transaction's txid is taken at its first write, before
# it waits for a stream's head, so a stream's version 6 can carry a lower txid
# than its version 5 when writers queue on one stream.
_VERIFY_SQL = """
    SELECT position, txid::text::bigint AS txid, id, stream_id, version, type, body, hash
    FROM events
    WHERE (stream_id, version) > ($1::uuid, $2)
    ORDER BY stream_id, version
    LIMIT $3
"""

_LEAVES_SQL = """
    SELECT l."index", l.event_id, l.leaf_hash, e.hash, e.txid::text::bigint AS txid, e.position,
        e.stream_id, e.version
    FROM ledger_leaves l LEFT JOIN events e ON e.id = l.event_id
    WHERE l."index" >= $1
    ORDER BY l."index"
    LIMIT $2
"""


async def verify_store(pool: asyncpg.Pool, *, page_size: int = 2000) -> VerifyReport:
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
        rows = await pool.fetch(_VERIFY_SQL, after[0], after[1], page_size)
        if not rows:
            break
        for row in rows:
            events += 1
            _check_link(row, heads, findings)
        after = (rows[-1]["stream_id"], rows[-1]["version"])

    async with pool.acquire() as conn, conn.transaction():
        async for stream in conn.cursor("SELECT stream_id, version, head_hash FROM streams", prefetch=5000):
            seen_version, seen_hash = heads.get(stream["stream_id"], (0, ZERO_HASH))
            if (stream["version"], stream["head_hash"]) != (seen_version, seen_hash):
                findings.add(
                    Mismatch(
                        kind="head_mismatch",
                        detail=(
                            f"the stream's head is version {stream['version']} but its events end at "
                            f"version {seen_version}: an event is missing or was altered at the end"
                        ),
                        stream_id=stream["stream_id"],
                        version=stream["version"],
                        expected_hash=stream["head_hash"].hex(),
                        stored_hash=seen_hash.hex(),
                    )
                )

    sealed = await _verify_leaves(pool, findings, page_size)
    return VerifyReport(
        ok=findings.count == 0,
        streams=len(heads),
        events=events,
        sealed=sealed,
        mismatch_count=findings.count,
        first_mismatch=findings.listed[0] if findings.listed else None,
        mismatches=findings.listed,
    )


def _check_link(row: asyncpg.Record, heads: dict[uuid.UUID, tuple[int, bytes]], findings: _Findings) -> None:
    stream_id, version, stored = row["stream_id"], row["version"], row["hash"]
    last_version, previous = heads.get(stream_id, (0, ZERO_HASH))
    where = dict(event_id=row["id"], stream_id=stream_id, version=version, position=row["position"])
    if version > last_version + 1:
        missing = f"{last_version + 1}" if version == last_version + 2 else f"{last_version + 1}-{version - 1}"
        findings.add(Mismatch(kind="version_gap", detail=f"version(s) {missing} of the stream are missing", **where))
    elif version <= last_version:
        findings.add(
            Mismatch(kind="out_of_order", detail=f"version {version} comes after version {last_version}", **where)
        )
    expected = chain_hash(previous, row["body"])
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
        keys = _body_keys.decode(row["body"])
        columns = (row["id"], stream_id, version, row["type"])
        if (keys.id, keys.stream_id, keys.version, keys.type) != columns:
            findings.add(Mismatch(kind="body_mismatch", detail="the hashed body disagrees with the row's columns", **where))
    except msgspec.DecodeError:
        findings.add(Mismatch(kind="body_mismatch", detail="the hashed body is not a readable event", **where))
    heads[stream_id] = (max(version, last_version), stored)


async def _verify_leaves(pool: asyncpg.Pool, findings: _Findings, page_size: int) -> int:
    sealed = 0
    previous: tuple[int, int] | None = None
    while True:
        rows = await pool.fetch(_LEAVES_SQL, sealed, page_size)
        if not rows:
            return sealed
        for row in rows:
            sealed += 1
            if row["hash"] is None:
                findings.add(
                    Mismatch(
                        kind="missing_event",
                        detail=f"leaf {row['index']} of the ledger seals an event that is no longer stored",
                        event_id=row["event_id"],
                    )
                )
                continue
            where = dict(
                event_id=row["event_id"], stream_id=row["stream_id"], version=row["version"], position=row["position"]
            )
            if leaf_hash(row["hash"]) != row["leaf_hash"]:
                findings.add(
                    Mismatch(
                        kind="ledger_mismatch",
                        detail=f"the event's hash is not the one sealed in leaf {row['index']}",
                        **where,
                    )
                )
            place = (row["txid"], row["position"])
            if previous is not None and place <= previous:
                findings.add(
                    Mismatch(
                        kind="ledger_order",
                        detail=f"leaf {row['index']} is out of the log's commit order",
                        **where,
                    )
                )
            previous = place

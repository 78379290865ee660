"""What auditors ask of the database: the NDJSON export of the log (and, from
service.audit.verify, the full recomputation of it that `/audit/verify` serves).

Every row comes through the event store (the global log through its gap-free
reader); a row whose body no longer parses is still served, with the queryable
copy of its data: an audit must be able to show a damaged record, not fail on it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import msgspec

from service.db import CONNECTION_FAILURES
from service.store.envelope import exported
from service.store.event_store import EVERYTHING, START, EventStore, LogFilter

# -- export ----------------------------------------------------------------------

_line_encoder = msgspec.json.Encoder()

# How many leaves the tree had when the export began: only those are labelled, so
# a leaf sealed while the export runs never follows a line already sent as unsealed.
_SEALED_SQL = 'SELECT coalesce(max("index") + 1, 0) FROM ledger_leaves'
_LEAF_INDEX_SQL = 'SELECT event_id, "index" FROM ledger_leaves WHERE event_id = ANY($1::uuid[]) AND "index" < $2'


async def export_lines(
    store: EventStore, where: LogFilter = EVERYTHING, *, page_size: int = 500, fallback: EventStore | None = None
) -> AsyncIterator[bytes]:
    """NDJSON lines (one `ExportedEvent` each), a page at a time, so memory stays
    constant whatever the size of the log. The export stops at the head of the log
    as it was when it began: a finite, verifiable prefix.

    Lines come in leaf order (docs/audit-format.md §5): each carries its
    `leaf_index`, 0, 1, 2…, then the events not sealed yet (`null`) in commit
    order. The sealer appends leaves in the log's gap-free commit order, so that
    is the order read here; the label comes from the stored leaves, so a log whose
    rows were reordered after sealing shows it as leaf indexes out of order
    instead of hiding it. A filtered export keeps the order and skips the others'
    events: its leaf indexes have gaps.

    `store` may read a hot standby and `fallback` the primary: if the standby goes
    away mid-export, the export carries on from the primary after the last event
    sent (the primary holds everything any standby has replayed)."""
    # The tree's size first, the head second: every event sealed by then is readable.
    sealed = await store.pool.fetchval(_SEALED_SQL)
    until = await store.head()
    after = START
    while until != START:
        try:
            page = await store.read_filtered(after, page_size, where, until=until, serve_damaged=True)
            rows = await store.pool.fetch(_LEAF_INDEX_SQL, [e.id for e in page], sealed) if page and sealed else []
        except CONNECTION_FAILURES:
            if fallback is None or fallback is store:
                raise
            store = fallback
            continue
        if not page:
            return
        leaves: dict[uuid.UUID, int] = {r["event_id"]: r["index"] for r in rows}
        chunk = bytearray()
        for event in page:
            _line_encoder.encode_into(exported(event, leaf_index=leaves.get(event.id)), chunk, -1)
            chunk += b"\n"
        yield bytes(chunk)
        after = page[-1].checkpoint
        if len(page) < page_size:
            return


# -- verification (service.audit.verify) -------------------------------------------

from service.audit.verify import Mismatch, VerifyReport, verify_store  # noqa: E402

__all__ = ["Mismatch", "VerifyReport", "export_lines", "verify_store"]

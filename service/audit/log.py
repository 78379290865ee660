"""What auditors ask of the database: the NDJSON export of the log (and, from
service.audit.verify, the full recomputation of it that `/audit/verify` serves).

Every row comes through the event store (the global log through its gap-free
reader); a row whose body no longer parses is still served, with the queryable
copy of its data: an audit must be able to show a damaged record, not fail on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from service.db import CONNECTION_FAILURES
from service.store.envelope import exported
from service.store.event_store import EVERYTHING, START, EventStore, LogFilter

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


# -- verification (service.audit.verify) -------------------------------------------

from service.audit.verify import Mismatch, VerifyReport, verify_store  # noqa: E402

__all__ = ["Mismatch", "VerifyReport", "export_lines", "verify_store"]

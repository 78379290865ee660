"""Consistency tokens: what a command response hands a client so that a later read,
on any node and any server, reflects at least that write.

A token names the write twice:

* its place in the log, the checkpoint `(txid, position)` of its last event. Read
  models are caught up with the write once every projection's checkpoint has passed
  it, on the primary or on a standby (the checkpoints are rows, replicated with the
  projections' other rows in the same transaction);
* the primary's WAL position once the write had committed (its commit LSN, or just
  past it): a hot standby whose `pg_last_wal_replay_lsn()` has reached it holds the
  write's events.

Text form: `txid.position.LSN` with the LSN in hexadecimal (`756.1.3000A28`). The
older `txid.position`, issued before tokens carried an LSN, is still accepted: it
means exactly what it always meant, and a standby serves it once its projection
checkpoints have passed it.
"""

from __future__ import annotations

import re

import asyncpg
import msgspec

from service.store.event_store import COMMITTED_LSN, Checkpoint

_TOKEN = re.compile(r"^(\d{1,20})\.(\d{1,20})(?:\.([0-9A-Fa-f]{1,16}))?$")
# What the API's query parameter accepts (documented in the OpenAPI document).
TOKEN_PATTERN = _TOKEN.pattern



class ConsistencyToken(msgspec.Struct, frozen=True):
    checkpoint: Checkpoint
    lsn: int | None = None

    def text(self) -> str:
        base = self.checkpoint.token()
        return base if self.lsn is None else f"{base}.{self.lsn:X}"

    @classmethod
    def parse(cls, text: str) -> "ConsistencyToken":
        match = _TOKEN.match(text)
        if match is None:
            raise ValueError(f"not a consistency token: {text!r}")
        txid, position, lsn = match.groups()
        return cls(Checkpoint(int(txid), int(position)), int(lsn, 16) if lsn is not None else None)

    @property
    def in_range(self) -> bool:
        """Whether every part fits the bigint/pg_lsn it is compared with."""
        return max(self.checkpoint.txid, self.checkpoint.position) < 2**63 and (self.lsn or 0) < 2**64


async def committed_lsn(conn: asyncpg.Connection | asyncpg.Pool) -> int:
    """The primary's WAL position past every write committed so far (COMMITTED_LSN)."""
    return await conn.fetchval(f"SELECT {COMMITTED_LSN}")

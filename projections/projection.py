"""What the runner (service.projection.runner) needs from every projection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

import asyncpg

from projections.records import Fact, StreamHistory


class Projection(Protocol):
    # Its name in projection_checkpoints and on the command line.
    name: ClassVar[str]
    # Its tables, in the order `apply` first writes them: a rebuild recreates and
    # swaps exactly these (identifiers come from this fixed list, never input).
    tables: ClassVar[tuple[str, ...]]
    # Key of the PostgreSQL advisory lock that lets one runner hold it.
    lock_id: ClassVar[int]

    async def apply(self, conn: asyncpg.Connection, facts: Sequence[Fact], history: StreamHistory) -> None:
        """Apply a batch of the log (in commit order) inside the caller's
        transaction; the caller writes the checkpoint in the same one. Facts the
        projection does not care about are simply skipped."""

    def reset(self) -> None:
        """Forget in-memory state (after a failed transaction, or when another
        runner or a rebuild may have changed the tables)."""

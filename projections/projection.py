"""What the runner (service.projection.runner) needs from every projection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple, Protocol

import asyncpg

from projections.records import Fact, StreamHistory


class SchemaStep(NamedTuple):
    """A projection's DDL, beside its module: applied by schema migration `version`
    (service.migrate runs it after that number's file in service/migrations, if
    any, in the same transaction). A change to a projection's tables is a new step
    with a new number; a step already applied is never edited."""

    version: int
    name: str
    sql: str


class Projection(Protocol):
    # Its name in projection_checkpoints and on the command line.
    name: ClassVar[str]
    # Its tables, in the order `apply` first writes them: a rebuild recreates and
    # swaps exactly these (identifiers come from this fixed list, never input).
    tables: ClassVar[tuple[str, ...]]
    # Key of the PostgreSQL advisory lock that lets one runner hold it.
    lock_id: ClassVar[int]
    # The DDL of its tables, in migration order.
    schema: ClassVar[tuple[SchemaStep, ...]]

    async def apply(self, conn: asyncpg.Connection, facts: Sequence[Fact], history: StreamHistory) -> None:
        """Apply a batch of the log (in commit order) inside the caller's
        transaction; the caller writes the checkpoint in the same one. Facts the
        projection does not care about are simply skipped."""

    def reset(self) -> None:
        """Forget in-memory state (after a failed transaction, or when another
        runner or a rebuild may have changed the tables)."""

"""What an operator watches, read from PostgreSQL and from the running parts:
the seal lag, and each component's last success and last error.

`/metrics` (service.http.metrics) and `/health/ready` (service.http.health) show
them; the projection lag is service.projection.watch's, the idempotency keys
held service.write.idempotency's.

* **Seal lag**: the events after the ledger's last leaf (read here from
  `ledger_leaves`, which service.audit.ledger writes; only the frontier is read).
* **Components** (`Components`, one per process, in the Runtime): the database
  (each readiness probe) and the sealer (each sealing round of this process) record
  when they last succeeded and last failed, and with what. The projections keep
  theirs in the runner's WorkerStats.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from service.audit.ledger import Sealer
from service.store.event_store import START, Checkpoint, EventStore

log = logging.getLogger("parley.operations")

_LAST_LEAF_SQL = 'SELECT txid::text::bigint AS txid, position FROM ledger_leaves ORDER BY "index" DESC LIMIT 1'
_LAG_COUNT_CAP = 1_000_000


@dataclass(frozen=True)
class Lag:
    events: int
    seconds: float


async def seal_lag(pool: asyncpg.Pool) -> Lag:
    """Readable events not yet leaves of the ledger's tree, and the age of the oldest."""
    row = await pool.fetchrow(_LAST_LEAF_SQL)
    after = Checkpoint(row["txid"], row["position"]) if row else START
    [backlog] = await EventStore(pool).backlog([after], cap=_LAG_COUNT_CAP)
    return Lag(backlog.events, backlog.seconds)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class ComponentState:
    last_success: dt.datetime | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None

    def succeeded(self) -> None:
        self.last_success = now()

    def failed(self, error: BaseException) -> None:
        self.last_error = f"{type(error).__name__}: {error}"
        self.last_error_at = now()

    @property
    def ok(self) -> bool:
        """Not failing now: no error, or a success since the last one."""
        return self.last_error_at is None or (self.last_success is not None and self.last_success > self.last_error_at)


@dataclass
class Components:
    """This process's components that report their own health."""

    database: ComponentState
    sealer: ComponentState

    @classmethod
    def new(cls) -> "Components":
        return cls(ComponentState(), ComponentState())


class ObservedSealer(Sealer):
    """service.audit.ledger.Sealer, each round's outcome kept in `state` (its own
    `run` loop, retries and stop on a tampered ledger unchanged)."""

    def __init__(self, *args: Any, state: ComponentState, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = state

    async def seal_once(self, *args: Any, **kwargs: Any) -> Any:
        try:
            sealed = await super().seal_once(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.state.failed(error)
            raise
        self.state.succeeded()
        return sealed

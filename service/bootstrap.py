"""The running service's parts, built once by the composition root (service.http.app)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from service.write.aggregate_cache import AggregateCache
from service.config import Settings
from service.projection.runner import ProjectionWatch, Projector, projection_lag
from service.store.event_store import Checkpoint, EventStore


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    store: EventStore
    # Long-running background tasks started with the app (projection runner, sealer...).
    background: list[Any] = field(default_factory=list)

    # The projection runner in this process (None if it runs elsewhere) and the
    # read-your-writes waiter; both set by the composition root.
    projector: Projector | None = None
    projection_watch: ProjectionWatch | None = None
    # Folded aggregates for the command path (a cache of the committed streams,
    # correct with any number of processes: see service.write.aggregate_cache).
    aggregates: AggregateCache = field(default_factory=AggregateCache)

    async def projection_lag(self) -> list[dict[str, Any]]:
        """Per projection: {name, events_behind, seconds_behind} the visible head
        of the log (for /health/ready and metrics)."""
        return await projection_lag(self.pool)

    async def wait_for(self, checkpoint: Checkpoint, timeout: float = 5.0) -> bool:
        """Read-your-writes: True once every projection has passed `checkpoint`
        (a write's consistency token), False if `timeout` seconds pass first."""
        if self.projection_watch is None:
            self.projection_watch = ProjectionWatch(self.pool, self.settings.database_url or "")
        return await self.projection_watch.wait_for(checkpoint, timeout)

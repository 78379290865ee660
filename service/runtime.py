"""The running service's parts, built once by the composition root (service.app)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from service.config import Settings
from service.store import EventStore


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    store: EventStore
    # Long-running background tasks started with the app (projection runner, sealer...).
    background: list[Any] = field(default_factory=list)

    async def projection_lag(self) -> list[dict[str, Any]]:
        """events and seconds behind the head of the log, per projection (empty until
        projections are wired)."""
        return []

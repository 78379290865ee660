"""Liveness and readiness."""

from __future__ import annotations

import asyncio

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import Response

from service.bootstrap import Runtime


class Liveness(msgspec.Struct):
    status: str


class StuckEvent(msgspec.Struct):
    """The event a projection cannot apply and stopped at (docs/operations.md)."""

    event_id: str
    negotiation_id: str
    error: str
    since: str


class ProjectionLag(msgspec.Struct):
    name: str
    events_behind: int
    seconds_behind: float
    stuck: StuckEvent | None = None  # set: not ready


class StandbyReadiness(msgspec.Struct):
    name: str  # "standby-1", … in the order of PARLEY_READ_DATABASE_URL
    answering: bool  # reachable and still replaying from the primary
    lag_seconds: float  # age of the oldest write it has not replayed (0: caught up)


class Readiness(msgspec.Struct):
    status: str  # "ready" | "unavailable"
    database: str  # "reachable" | "unreachable"
    projections: list[ProjectionLag] = []
    # The hot standbys that answer reads (none: the primary answers them all). A
    # standby that is not answering does not make the node unready: the primary
    # answers its reads meanwhile.
    standbys: list[StandbyReadiness] = []


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", operation_id="getLiveness", summary="The process is up", security=[])
    async def live(self) -> Liveness:
        return Liveness(status="live")

    @get("/ready", operation_id="getReadiness", summary="Database reachable; projection lag", security=[])
    async def ready(self, runtime: NamedDependency[Runtime]) -> Response[Readiness]:
        try:
            await asyncio.wait_for(runtime.pool.fetchval("SELECT 1"), timeout=2)
        except Exception:  # any failure to reach the database means "not ready"
            return Response(Readiness(status="unavailable", database="unreachable"), status_code=503)
        lags = [_lag(**lag) for lag in await runtime.projection_lag()]
        standbys = [
            StandbyReadiness(s.name, s.state.usable, round(runtime.reads.lag(s), 3)) for s in runtime.reads.standbys
        ]
        # A projection stuck at an event serves that negotiation no more: not ready.
        stuck = any(lag.stuck is not None for lag in lags)
        return Response(
            Readiness(status="unavailable" if stuck else "ready", database="reachable", projections=lags,
                      standbys=standbys),
            status_code=503 if stuck else 200,
        )  # fmt: skip


def _lag(name: str, events_behind: int, seconds_behind: float, stuck: dict | None = None, **_: object) -> ProjectionLag:
    return ProjectionLag(
        name, events_behind, seconds_behind,
        None if stuck is None else StuckEvent(
            str(stuck["event_id"]), str(stuck["negotiation_id"]), stuck["error"], stuck["since"].isoformat()
        ),
    )  # fmt: skip

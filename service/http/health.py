"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import Response

from service.bootstrap import Runtime
from service.operations import ComponentReport, component_reports, state_report


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


class Component(msgspec.Struct):
    """One part the node depends on, as this process knows it (docs/operations.md)."""

    name: str  # "database", "projection issue_status", …, "sealer", "witness <key name>"
    ok: bool  # not failing now: no error, or a success since the last one
    last_success: dt.datetime | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    # Projections and the sealer: events still to apply or seal, the oldest's age.
    # Witnesses: sealed leaves their newest cosignature does not cover, its age.
    events_behind: int | None = None
    seconds_behind: float | None = None
    url: str | None = None  # witnesses: the URL they are asked at


class Readiness(msgspec.Struct):
    status: str  # "ready" | "unavailable"
    database: str  # "reachable" | "unreachable"
    projections: list[ProjectionLag] = []
    # The hot standbys that answer reads (none: the primary answers them all). A
    # standby that is not answering does not make the node unready: the primary
    # answers its reads meanwhile.
    standbys: list[StandbyReadiness] = []
    # Every component with its last success and last error (none when the database
    # is unreachable: only `database` is known then).
    components: list[Component] = []


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", operation_id="getLiveness", summary="The process is up", security=[])
    async def live(self) -> Liveness:
        return Liveness(status="live")

    @get("/ready", operation_id="getReadiness", summary="Database reachable; projection lag", security=[])
    async def ready(self, runtime: NamedDependency[Runtime]) -> Response[Readiness]:
        database = runtime.components.database
        try:
            await asyncio.wait_for(runtime.pool.fetchval("SELECT 1"), timeout=2)
        except Exception as error:  # any failure to reach the database means "not ready"
            database.failed(error)
            return Response(Readiness(status="unavailable", database="unreachable",
                                      components=[_component(state_report("database", database))]), status_code=503)
        database.succeeded()
        raw = await runtime.projection_lag()
        lags = [_lag(**lag) for lag in raw]
        components = [_component(report) for report in await component_reports(runtime, raw)]
        standbys = [
            StandbyReadiness(s.name, s.state.usable, round(runtime.reads.lag(s), 3)) for s in runtime.reads.standbys
        ]
        # A projection stuck at an event serves that negotiation no more: not ready.
        # The sealer and the witnesses are reported only: a witness that is down
        # delays signed time, it does not stop this node from answering
        # (docs/operations.md, "Metrics and health").
        stuck = any(lag.stuck is not None for lag in lags)
        return Response(
            Readiness(status="unavailable" if stuck else "ready", database="reachable", projections=lags,
                      standbys=standbys, components=components),
            status_code=503 if stuck else 200,
        )  # fmt: skip


def _lag(name: str, events_behind: int, seconds_behind: float, stuck: dict | None = None, **_: object) -> ProjectionLag:
    return ProjectionLag(
        name, events_behind, seconds_behind,
        None if stuck is None else StuckEvent(
            str(stuck["event_id"]), str(stuck["negotiation_id"]), stuck["error"], stuck["since"].isoformat()
        ),
    )  # fmt: skip


def _component(report: ComponentReport) -> Component:
    return Component(**dataclasses.asdict(report))

"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import Response

from service.bootstrap import Runtime
from service.operations import ComponentState, seal_lag


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

    name: str  # "database", "projection issue_status", …, "sealer"
    ok: bool  # not failing now: no error, or a success since the last one
    last_success: dt.datetime | None = None
    last_error: str | None = None
    last_error_at: dt.datetime | None = None
    events_behind: int | None = None  # projections and the sealer: what is still to do
    seconds_behind: float | None = None


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
                                      components=[_component("database", database)]), status_code=503)
        database.succeeded()
        raw = await runtime.projection_lag()
        lags = [_lag(**lag) for lag in raw]
        components = [_component("database", database), *_projections(runtime, raw), await _sealer(runtime)]
        standbys = [
            StandbyReadiness(s.name, s.state.usable, round(runtime.reads.lag(s), 3)) for s in runtime.reads.standbys
        ]
        # A projection stuck at an event serves that negotiation no more: not ready.
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


def _component(name: str, state: ComponentState, **lag: Any) -> Component:
    return Component(name, state.ok, state.last_success, state.last_error, state.last_error_at, **lag)


def _projections(runtime: Runtime, lags: list[dict[str, Any]]) -> list[Component]:
    """Last success: when its checkpoint last moved (whichever process holds it);
    last error: this process's runner's, or the event it is stuck at."""
    here = {s.name: s for s in runtime.projector.stats()} if runtime.projector is not None else {}
    found = []
    for lag in lags:
        stats, stuck = here.get(lag["name"]), lag.get("stuck")
        error, error_at = (stats.last_error, stats.last_error_at) if stats is not None else (None, None)
        if stuck is not None:
            error, error_at = stuck["error"], stuck["since"]
        found.append(Component(
            f"projection {lag['name']}", stuck is None and (error_at is None or lag["updated_at"] > error_at),
            lag["updated_at"], error, error_at, lag["events_behind"], round(lag["seconds_behind"], 3),
        ))  # fmt: skip
    return found


async def _sealer(runtime: Runtime) -> Component:
    """This process's sealer rounds when it seals; else (`parley seal` elsewhere)
    the last signed checkpoint as its last success."""
    lag = await seal_lag(runtime.pool)
    if runtime.sealer is not None:
        return _component("sealer", runtime.components.sealer, events_behind=lag.events,
                          seconds_behind=round(lag.seconds, 3))
    latest = await runtime.ledger.latest_checkpoint()
    return Component("sealer", True, latest.signed_at if latest else None, None, None, lag.events,
                     round(lag.seconds, 3))

"""The HTTP limit: a bare Litestar app with one route doing one INSERT and one
doing one SELECT by key — no auth, no domain, no event store, no projections.
Served by uvicorn with the same settings as Parley (bench._servers).

    BENCH_DATABASE_URL=... uvicorn bench.limit_app:create_app_from_env --factory
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from litestar import Litestar, Request, Response, get, post
from litestar.datastructures import State

from service.db import create_pool

SCHEMA = """
CREATE TABLE IF NOT EXISTS limit_rows (
    position bigserial PRIMARY KEY,
    key      text NOT NULL,
    body     jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS limit_rows_key ON limit_rows (key);
"""


@post("/rows/{key:str}", status_code=201)
async def insert_row(key: str, request: Request, state: State) -> Response[bytes]:
    body = await request.body()
    position = await state.pool.fetchval(
        "INSERT INTO limit_rows (key, body) VALUES ($1, $2) RETURNING position", key, body.decode()
    )
    return Response(b'{"position":%d}' % position, media_type="application/json", status_code=201)


@get("/rows/{key:str}")
async def select_row(key: str, state: State) -> Response[bytes]:
    body = await state.pool.fetchval("SELECT body::text FROM limit_rows WHERE key = $1 LIMIT 1", key)
    if body is None:
        return Response(b'{"title":"not found"}', media_type="application/json", status_code=404)
    return Response(body.encode(), media_type="application/json")


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def create_app_from_env() -> Litestar:
    url = os.environ["BENCH_DATABASE_URL"]

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # The same pool settings as Parley's (service.db.create_pool defaults).
        pool = await create_pool(url)
        await pool.execute(SCHEMA)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    return Litestar(route_handlers=[insert_row, select_row, health], lifespan=[lifespan])


"""The real app (create_app) against a fresh migrated PostgreSQL database per test,
driven through Litestar's AsyncTestClient (lifespan, middleware, projector and all)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from domain.example import OPENED
from service.http.app import create_app
from service.auth import Role, create_key, revoke_key
from service.config import Settings


class Keys:
    """One key per role, plus a revoked one; `headers(role)` for requests."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys

    def headers(self, role: str | None, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if role is not None:
            headers["Authorization"] = f"Bearer {self.keys[role]}"
        return headers


def make_app(database_url: str, data_dir: Path, **settings: object) -> Litestar:
    return create_app(Settings.from_env({}).with_overrides(database_url=database_url, data_dir=data_dir, **settings))


async def make_keys(database_url: str) -> Keys:
    """One key per role, named after it, and a revoked admin key."""
    conn = await asyncpg.connect(database_url)
    try:
        made = {role.value: await create_key(conn, role.value, role) for role in Role}
        made["revoked"] = await create_key(conn, "revoked", Role.ADMIN)
        await revoke_key(conn, "revoked")
    finally:
        await conn.close()
    return Keys(made)


@pytest.fixture
async def keys(database_url: str) -> Keys:
    return await make_keys(database_url)


@pytest.fixture
def auth_failure_limit() -> int:
    """Failed authentications before 429 for `client`'s app (a test parametrizes it
    to change it: its app, and only its app, gets that throttle)."""
    return Settings.from_env({}).auth_failure_limit


@pytest.fixture
async def client(database_url: str, tmp_path: Path, keys: Keys, auth_failure_limit: int) -> AsyncIterator[AsyncTestClient]:
    app = make_app(database_url, tmp_path, auth_failure_limit=auth_failure_limit)
    async with AsyncTestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


class Api:
    """A recorder's view of the API, for tests that are about something else."""

    def __init__(self, client: AsyncTestClient, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    async def open(self, body: dict[str, Any] | None = None, role: str = "recorder") -> dict[str, Any]:
        response = await self.client.post("/negotiations", json=body or OPENED, headers=self.keys.headers(role))
        assert response.status_code == 201, response.text
        return response.json()

    async def record(self, ref: str, body: Any, expect: int = 201, **headers: str) -> Any:
        response = await self.client.post(
            f"/negotiations/{ref}/commands", json=body, headers=self.keys.headers("recorder", **headers)
        )
        assert response.status_code == expect, response.text
        return response.json()

    async def get(self, path: str, expect: int = 200, role: str = "reader", **params: Any) -> Any:
        response = await self.client.get(path, params=params, headers=self.keys.headers(role))
        assert response.status_code == expect, response.text
        return response.json()


@pytest.fixture
def api(client: AsyncTestClient, keys: Keys) -> Api:
    return Api(client, keys)

"""The failed-key throttle behind proxies (issue 15 finding 3): forwarded addresses
are believed only from PARLEY_TRUSTED_PROXIES, a valid key is never refused, and
every route that takes a key documents its 429."""

from __future__ import annotations

import signal
import uuid

import httpx

from tests.reliability.conftest import free_port, kill_group, live_server, make_app, start_serve, wait_ready


def _guess() -> dict[str, str]:
    return {"Authorization": f"Bearer pk_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}"}


async def _statuses_rotating_forwarded_for(base: str, n: int) -> list[int]:
    statuses = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for i in range(n):
            headers = {**_guess(), "X-Forwarded-For": f"198.51.100.{i + 1}", "Forwarded": f"for=198.51.100.{i + 1}"}
            statuses.append((await http.get("/negotiations", headers=headers)).status_code)
    return statuses


async def test_a_rotating_x_forwarded_for_does_not_escape_the_throttle(database_url, tmp_path, processes):
    """`parley serve` believes no forwarded header by default: 30 wrong keys from
    one client are throttled whatever X-Forwarded-For says."""
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_serve(database_url, port, log, PARLEY_DATA_DIR=str(tmp_path))
    processes.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, log)
    statuses = await _statuses_rotating_forwarded_for(base, 30)
    kill_group(process, signal.SIGTERM)
    assert statuses[:10] == [401] * 10, statuses
    assert set(statuses[10:]) == {429}, statuses


async def test_forwarded_addresses_are_believed_from_a_configured_proxy(database_url, tmp_path, processes):
    """With PARLEY_TRUSTED_PROXIES naming the proxy (here: loopback), each forwarded
    address is its own client: none of them reached the limit."""
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_serve(database_url, port, log, PARLEY_DATA_DIR=str(tmp_path),
                          PARLEY_TRUSTED_PROXIES="127.0.0.1,::1")
    processes.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, log)
    statuses = await _statuses_rotating_forwarded_for(base, 30)
    kill_group(process, signal.SIGTERM)
    assert statuses == [401] * 30, statuses


async def test_a_valid_key_is_never_refused_by_the_failed_key_throttle(database_url, tmp_path, keys):
    app = make_app(database_url, tmp_path, auth_failure_limit=4)
    async with live_server(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        for _ in range(4 + 5):
            await http.get("/negotiations", headers=_guess())
        assert (await http.get("/negotiations", headers=_guess())).status_code == 429
        for role in ("reader", "recorder", "auditor", "admin"):
            response = await http.get("/negotiations", headers=keys.headers(role))
            assert response.status_code == 200, (role, response.text)


def test_every_route_that_takes_a_key_documents_its_429(database_url, tmp_path):
    spec = make_app(database_url, tmp_path).openapi_schema.to_schema()
    missing = [
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if "401" in operation.get("responses", {}) and "429" not in operation["responses"]
    ]
    with_key = [p for p, item in spec["paths"].items() for op in item.values() if "401" in op.get("responses", {})]
    assert len(with_key) >= 15
    assert missing == [], missing

"""Security: every route × every role answers as DESIGN.md says; API keys never show
up in logs, errors or responses after creation; repeated failed authentication is
throttled. Real HTTP: the app behind uvicorn on a loopback port.

DESIGN.md: `reader` GETs statuses and timelines, `recorder` = reader + commands,
`auditor` = reader + event log, export, verify, `admin` = everything. Health,
the public log (GET /ledger/...), the OpenAPI document, the reference page and the
dashboard's static files need no key. A revoked key is no key.

Over 300 lines on purpose: the route × role matrix is one table of every route
beside the checks that read it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any

import httpx
import pytest

from service.config import Settings
from tests.reliability.conftest import (
    PARTIES,
    ROLES,
    Keys,
    event_count,
    live_server,
    make_app,
    problem_of,
)

PUBLIC, READ, RECORD, AUDIT = "public", "read", "record", "audit"
ALLOWED = {
    PUBLIC: {None, "revoked", *ROLES},
    READ: set(ROLES),
    RECORD: {"recorder", "admin"},
    AUDIT: {"auditor", "admin"},
}
CALLERS: list[str | None] = [None, "revoked", *ROLES]


def permission_for(method: str, path: str) -> str:
    """DESIGN.md's table of who may do what, by route."""
    if path.startswith("/health") or (method == "GET" and path.startswith("/ledger")):
        return PUBLIC  # the public log: checkpoints, tiles, proofs, the log's key
    if (method, path) == ("POST", "/ledger/receipts"):
        return PUBLIC  # a receipt exchanged for its proof: hashes only
    if method == "POST":
        return RECORD
    if path.startswith(("/events", "/audit", "/ledger")):
        return AUDIT
    if path.startswith("/negotiations") or path == "/metrics":
        return READ
    raise AssertionError(f"route {method} {path} is not classified: add it to DESIGN.md's role table and here")


async def _seed(base: str, keys: Keys) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, headers=keys.headers("recorder"), timeout=30) as http:
        opened = await http.post(
            "/negotiations",
            json={"title": "Matrix talks", "slug": "matrix", "parties": PARTIES, "occurred_on": "2022-03-01"},
        )
        assert opened.status_code == 201, opened.text
        raised = await http.post(
            "/negotiations/matrix/commands",
            json={"type": "issue.raised", "occurred_on": "2022-03-02", "issue": "neutrality",
                  "title": "Neutral status", "category": "political_status"},
        )
        assert raised.status_code == 201, raised.text
        agreed = await http.post(
            "/negotiations/matrix/commands",
            json={"type": "agreement.reached", "occurred_on": "2022-03-03", "issue": "neutrality", "agreement_id": "deal",
                  "level": "final", "parties": [p["code"] for p in PARTIES], "summary": "s"},
        )
        assert agreed.status_code == 201, agreed.text
    event_id = raised.json()["events"][0]["id"]
    # Wait for the sealer to publish a checkpoint that covers both events, so the
    # ledger routes have something to answer for the roles allowed to ask.
    async with httpx.AsyncClient(base_url=base, headers=keys.headers("auditor"), timeout=30) as http:
        for _ in range(200):
            checkpoint = await http.get("/ledger/checkpoints/latest")
            if checkpoint.status_code == 200 and checkpoint.json().get("tree_size", 0) >= 3:
                break
            await asyncio.sleep(0.1)
    return {"event_id": event_id, "negotiation_id": opened.json()["negotiation_id"],
            "tree_size": checkpoint.json()["tree_size"], "receipt": raised.json()["events"][0]["receipt"]}


def _request_for(method: str, path: str, seed: dict[str, Any], n: int) -> dict[str, Any]:
    url = path.replace("{ref}", "matrix").replace("{key}", "neutrality").replace("{agreement_id}", "deal")
    params: dict[str, Any] = {}
    body: Any = None
    if path == "/ledger/proofs/inclusion":
        params = {"event_id": seed["event_id"], "tree_size": 2}
    elif path == "/ledger/proofs/consistency":
        params = {"first": 1, "second": 2}
    elif path == "/ledger/checkpoints/{tree_size}":
        url = f"/ledger/checkpoints/{seed['tree_size']}"
    elif path == "/ledger/tile/{tile}":
        url = f"/ledger/tile/0/000.p/{seed['tree_size']}"
    elif path == "/ledger/receipts":
        return {"method": method, "url": url, "params": params, "json": None, "content": seed["receipt"].encode()}
    elif path == "/negotiations" and method == "POST":
        body = {"title": f"Talks {n}", "slug": f"talks-{n}", "parties": PARTIES, "occurred_on": "2022-03-01"}
    elif method == "POST":
        body = {"type": "statement.made", "occurred_on": "2022-03-03", "speaker": "Lavrov", "party": "RU",
                "summary": f"statement {n}"}
    return {"method": method, "url": url, "params": params, "json": body}


async def _send(http: httpx.AsyncClient, request: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    if request["url"] == "/events/stream":
        # Server-Sent Events never end: the status line and headers are the answer.
        async with http.stream("GET", request["url"], headers=headers) as response:
            return httpx.Response(response.status_code, headers=response.headers,
                                  content=b"" if response.status_code == 200 else await response.aread())
    return await http.request(request["method"], request["url"], params=request["params"], json=request["json"],
                              content=request.get("content"), headers=headers)


async def test_every_route_answers_every_role_as_designed(database_url, tmp_path, keys, caplog):
    caplog.set_level(logging.DEBUG)
    # Revoked keys are failed authentications: the throttle (tested below) would
    # step in long before the matrix is through.
    app = make_app(database_url, tmp_path, auth_failure_limit=10_000)
    spec = app.openapi_schema.to_schema()
    operations = [(m.upper(), p) for p, item in spec["paths"].items() for m in item if m in ("get", "post")]
    assert len(operations) >= 19, operations
    seen: list[str] = []
    outcomes: dict[tuple[str, str], dict[str | None, int]] = {}
    async with live_server(app) as base:
        seed = await _seed(base, keys)
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            n = 0
            for method, path in operations:
                permission = permission_for(method, path)
                for caller in CALLERS:
                    n += 1
                    request = _request_for(method, path, seed, n)
                    before = await event_count(database_url)
                    response = await _send(http, request, keys.headers(caller))
                    seen.append(response.text)
                    seen.extend(f"{k}: {v}" for k, v in response.headers.items())
                    outcomes.setdefault((method, path), {})[caller] = response.status_code
                    where = f"{method} {path} as {caller}: {response.status_code} {response.text[:300]}"
                    if caller in ALLOWED[permission]:
                        assert 200 <= response.status_code < 300, where
                        if method == "POST" and path != "/ledger/receipts":  # (a read with a body)
                            assert await event_count(database_url) > before, where
                    else:
                        expected = 401 if caller in (None, "revoked") else 403
                        assert response.status_code == expected, where
                        body = problem_of(response)
                        assert body["type"].endswith("unauthenticated" if expected == 401 else "forbidden"), where
                        if expected == 401:
                            assert response.headers["www-authenticate"].lower().startswith("bearer")
                        assert await event_count(database_url) == before, where
            # Routes outside the OpenAPI document that need no key.
            for path in ("/", "/schema/openapi.json", "/docs", "/health/live"):
                response = await http.get(path)
                assert response.status_code == 200, (path, response.status_code)
            # An unknown route is 404 for an allowed key, never a leak of the route table.
            response = await http.get("/negotiations/matrix/nope", headers=keys.headers("admin"))
            assert response.status_code == 404
            problem_of(response)
    # Every secret stays out of every response and every log line.
    _assert_no_secret(keys, "\n".join(seen), "responses")
    _assert_no_secret(keys, caplog.text, "logs")
    assert len(outcomes) == len(operations)


def _secrets(keys: Keys) -> list[str]:
    # The whole key and its secret part (the key id alone is public: `parley keys list`).
    found = []
    for key in keys.keys.values():
        found.append(key)
        found.append(key.split("_", 2)[2])
    return found


def _assert_no_secret(keys: Keys, text: str, where: str) -> None:
    for secret in _secrets(keys):
        assert secret not in text, f"an API key secret appears in the {where}"


async def test_failed_authentication_is_throttled_with_retry_after(database_url, tmp_path, keys):
    limit = Settings.from_env({}).auth_failure_limit  # the default, PARLEY_AUTH_FAILURE_LIMIT unset
    app = make_app(database_url, tmp_path)
    async with live_server(app) as base, httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.get("/negotiations", headers=keys.headers("reader"))).status_code == 200
        guesses = [f"pk_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}" for _ in range(limit)]
        for guess in guesses:
            response = await http.get("/negotiations", headers={"Authorization": f"Bearer {guess}"})
            assert response.status_code == 401
            assert guess not in response.text
        # The next wrong attempt waits: a guesser learns nothing more...
        for headers in ({"Authorization": "Bearer pk_x_y"}, keys.headers("revoked"), {}):
            response = await http.get("/negotiations", headers=headers)
            assert response.status_code == 429, response.text
            body = problem_of(response)
            retry_after = int(response.headers["retry-after"])
            assert 1 <= retry_after <= 61
            assert body["retry_after"] == retry_after
        # ...but a valid key from the same address is never refused (issue 15: one
        # guesser behind a shared proxy must not lock everyone out).
        assert (await http.get("/negotiations", headers=keys.headers("reader"))).status_code == 200
        # Public routes stay up for a throttled address.
        assert (await http.get("/health/live")).status_code == 200
        # The revoked key counts as a failure too, and it never shows in an answer.
        assert keys.keys["revoked"] not in response.text


async def test_keys_never_appear_in_the_logs_of_a_serve_process(database_url, tmp_path, keys, processes):
    """`parley serve` at DEBUG log level, with an admin key from the environment:
    successful, failed and revoked authentications, a crash-free error path, and
    not one secret in its output."""
    from tests.reliability.conftest import free_port, start_serve, wait_ready

    port = free_port()
    log = tmp_path / "serve.log"
    admin = keys.keys["admin"]
    process = start_serve(database_url, port, log, PARLEY_LOG_LEVEL="DEBUG", PARLEY_ADMIN_KEY=admin,
                          PARLEY_DATA_DIR=str(tmp_path))
    processes.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, log)
    responses = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        for role in (*ROLES, "revoked"):
            responses.append(await http.get("/negotiations", headers=keys.headers(role)))
            responses.append(await http.post("/negotiations", json={"nonsense": True}, headers=keys.headers(role)))
            responses.append(await http.get("/events", params={"cursor": "x"}, headers=keys.headers(role)))
        wrong = admin[:-4] + "AAAA"
        responses.append(await http.get("/negotiations", headers={"Authorization": f"Bearer {wrong}"}))
        responses.append(await http.get("/negotiations", headers={"Authorization": admin}))  # no scheme
    import signal

    from tests.reliability.conftest import kill_group

    kill_group(process, signal.SIGTERM)
    output = log.read_text(errors="replace")
    assert "Parley serving" in output
    text = "\n".join(r.text + "\n" + "\n".join(f"{k}: {v}" for k, v in r.headers.items()) for r in responses)
    _assert_no_secret(keys, output, "serve output")
    _assert_no_secret(keys, text, "responses")
    assert wrong.split("_", 2)[2] not in output + text
    assert re.search(r"pk_[0-9a-f]+_[A-Za-z0-9_-]{20,}", output + text) is None


async def test_the_application_role_cannot_rewrite_history_even_with_raw_sql(database_url):
    """With exactly the grants that ship (service.roles.APP_GRANTS, the text
    docs/operations.md gives and the embedded server applies), not a copy of them."""
    import asyncpg

    from service.roles import grant_app_role
    from service.store.event_store import EventStore
    from tests.reliability.conftest import event_count

    role = f"parley_app_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE ROLE {role} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS")
        await grant_app_role(conn, role)
        # As the application role, normal operation works: an append (events, the
        # stream head, the sequence, NOTIFY) and a projection checkpoint update.
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            import datetime as dt

            import msgspec

            from service.store.event_store import PendingEvent

            store = EventStore(None)  # type: ignore[arg-type]
            await store.append(
                [PendingEvent(id=uuid.uuid4(), stream_id=uuid.uuid4(), stream_type="negotiation",
                              type="negotiation.opened", schema_version=1, data=msgspec.json.encode({"title": "t"}),
                              occurred_on="2022-03-01", recorded_by="app")],
                conn=conn,
            )
            await conn.execute("UPDATE projection_checkpoints SET updated_at = now()")
        assert await event_count(database_url) == 1
        refused = []
        for statement in (
            "UPDATE events SET type = 'forged'",
            "DELETE FROM events",
            "TRUNCATE events",
            "TRUNCATE events CASCADE",
            "ALTER TABLE events DISABLE TRIGGER ALL",
            "ALTER TABLE events DISABLE TRIGGER events_no_update_delete",
            "DROP TRIGGER events_no_update_delete ON events",
            "DROP TABLE events",
            "ALTER TABLE events RENAME TO events_old",
            "SET session_replication_role = replica",
            "CREATE OR REPLACE FUNCTION parley_refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RETURN NEW; END $$",
            "UPDATE ledger_leaves SET leaf_hash = leaf_hash",
            "DELETE FROM ledger_checkpoints",
            # The ledger is the sealer role's to write (a planted checkpoint or
            # cosignature would vouch for a rewritten log).
            "INSERT INTO ledger_checkpoints (tree_size) VALUES (1)",
            "INSERT INTO ledger_cosignatures (tree_size) VALUES (1)",
            "INSERT INTO ledger_leaves (\"index\") VALUES (0)",
            f"ALTER ROLE {role} SUPERUSER",
        ):
            try:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL ROLE {role}")
                    await conn.execute(statement)
            except asyncpg.InsufficientPrivilegeError:
                refused.append(statement)
            except asyncpg.PostgresError as error:
                raise AssertionError(f"{statement!r} failed otherwise: {error!r}") from None
            else:
                raise AssertionError(f"the application role could run {statement!r}")
        assert len(refused) == 17
        # A GRANT without the grant option is a warning that grants nothing.
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            await conn.execute("GRANT UPDATE, DELETE, TRUNCATE ON events TO PUBLIC")
        for privilege in ("UPDATE", "DELETE", "TRUNCATE"):
            assert not await conn.fetchval("SELECT has_table_privilege($1, 'events', $2)", role, privilege)
        assert await event_count(database_url) == 1
        # For contrast: the owner can switch the trigger off (rolled back here),
        # which is why the service must not run as the owner where this matters.
        class Undo(Exception):
            pass

        try:
            async with conn.transaction():
                await conn.execute("ALTER TABLE events DISABLE TRIGGER events_no_update_delete")
                assert await conn.execute("UPDATE events SET type = 'forged'") == "UPDATE 1"
                raise Undo
        except Undo:
            pass
        assert await conn.fetchval("SELECT type FROM events") == "negotiation.opened"
    finally:
        await conn.execute(f"DROP OWNED BY {role}")
        await conn.execute(f"DROP ROLE {role}")
        await conn.close()

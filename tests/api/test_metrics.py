"""GET /metrics (prometheus_client through Litestar's Prometheus plugin): request
counts by the status actually sent, the domain gauges, and who may read them.

The counters live in the process (prometheus_client's registry), so a test reads
them before and after what it does and asserts the difference."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from domain.example import COMMANDS
from projections import PROJECTION_NAMES

REQUESTS = "parley_http_requests"  # the parser drops a counter's _total


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def request_count(text: str, method: str, path: str, status: int) -> float:
    """parley_http_requests_total for one method, route template and status (0 if absent)."""
    return sum(
        value for name, labels, value in samples(text)
        if name == f"{REQUESTS}_total" and labels.get("method") == method
        and labels.get("path") == path and labels.get("status_code") == str(status)
    )


def gauge(text: str, name: str, **labels: str) -> float:
    found = [value for sample, got, value in samples(text) if sample == name and labels.items() <= got.items()]
    assert len(found) == 1, (name, labels, found, text)
    return found[0]


async def scrape(client, keys) -> str:
    response = await client.get("/metrics", headers=keys.headers("reader"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return response.text


@pytest.mark.parametrize("auth_failure_limit", [3])
async def test_refusals_are_counted_with_the_status_sent(client, keys, api):
    """An unauthenticated GET is a 401 in the metrics, not a 500 (issue 16 item 4,
    issue 18): 5xx alerting must not fire on failed logins. Likewise 403, 404 and
    the failed-key throttle's 429."""
    await api.open()
    before = await scrape(client, keys)
    template = "/negotiations/{ref}"

    sent = []
    for headers in ({}, {"Authorization": "Bearer pk_nope_nope"}):  # no key; an unknown key
        sent.append((await client.get("/negotiations", headers=headers)).status_code)
    sent.append((await client.post("/negotiations", json={}, headers=keys.headers("reader"))).status_code)
    sent.append((await client.get("/negotiations/no-such-negotiation", headers=keys.headers("reader"))).status_code)
    sent.append((await client.get("/negotiations/russia-ukraine-2022", headers=keys.headers("reader"))).status_code)
    for _ in range(3):  # two more failures reach the limit of 3; the next is throttled
        sent.append((await client.get("/negotiations", headers={"Authorization": "Bearer pk_x_y"})).status_code)
    assert sent == [401, 401, 403, 404, 200, 401, 401, 429], sent

    after = await scrape(client, keys)

    def delta(method: str, path: str, status: int) -> float:
        return request_count(after, method, path, status) - request_count(before, method, path, status)

    assert delta("GET", "/negotiations", 401) == 4, after
    assert delta("GET", "/negotiations", 429) == 1, after
    assert delta("POST", "/negotiations", 403) == 1, after
    assert delta("GET", template, 404) == 1, after
    assert delta("GET", template, 200) == 1, after
    for method, path in (("GET", "/negotiations"), ("POST", "/negotiations"), ("GET", template)):
        assert delta(method, path, 500) == 0, after


async def test_metrics_count_commands_events_and_show_the_domain_gauges(api, client, keys):
    await api.open()
    before = await scrape(client, keys)
    token = (await api.record("russia-ukraine-2022", {"commands": COMMANDS}, **{"Idempotency-Key": "k-1"}))[
        "consistency_token"]
    await api.get("/negotiations/russia-ukraine-2022", consistency_token=token)
    after = await scrape(client, keys)

    path = "/negotiations/{ref}/commands"
    assert request_count(after, "POST", path, 201) - request_count(before, "POST", path, 201) == 1, after
    assert "parley_http_request_duration_seconds_bucket" in after
    appended = gauge(after, "parley_events_appended_total") - gauge(before, "parley_events_appended_total")
    assert appended == len(COMMANDS) + 2, appended  # the batch raises the two default issues too
    # One request at a time: no race lost.
    assert gauge(after, "parley_command_retries_total") == gauge(before, "parley_command_retries_total")

    # Gauges read from PostgreSQL at scrape time (a fresh database per test): the
    # log's head is the opening and the batch; every projection has caught up with
    # the read above; one idempotency key is held.
    assert gauge(after, "parley_log_head_position") == 1 + appended
    for name in PROJECTION_NAMES:
        assert gauge(after, "parley_projection_lag_events", projection=name) == 0, after
        assert gauge(after, "parley_projection_lag_seconds", projection=name) == 0, after
    assert gauge(after, "parley_idempotency_keys") == 1
    assert gauge(after, "parley_event_streams_open") == 0
    assert 0 <= gauge(after, "parley_seal_lag_events") <= 1 + appended
    # The sealer (a round a second) catches up: waited for by scraping, with a
    # ceiling that fails loudly.
    for _ in range(600):
        text = await scrape(client, keys)
        if gauge(text, "parley_seal_lag_events") == 0:
            assert gauge(text, "parley_seal_lag_seconds") == 0
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the seal lag did not reach 0 within 60 s: {text}")


async def test_metrics_need_a_key(client, keys):
    assert (await client.get("/metrics")).status_code == 401
    assert (await client.get("/metrics", headers=keys.headers("revoked"))).status_code == 401
    for role in ("reader", "recorder", "auditor", "admin"):
        assert (await client.get("/metrics", headers=keys.headers(role))).status_code == 200, role


async def test_readiness_names_each_component_with_its_last_success_and_error(api, client, database_url):
    """/health/ready: the database, each projection with its lag, the sealer, each
    with its last success and last error; a sealer that fails (its checkpoints'
    table renamed away under it) shows the error, and its recovery after."""
    import asyncpg

    await api.open()

    async def ready(until) -> dict:
        for _ in range(600):
            body = (await client.get("/health/ready")).json()
            components = {c["name"]: c for c in body["components"]}
            if until(components):
                return components
            await asyncio.sleep(0.1)
        raise AssertionError(f"not within 60 s: {body}")

    components = await ready(lambda c: c["sealer"]["last_success"] is not None)
    assert set(components) == {"database", "sealer", *(f"projection {n}" for n in PROJECTION_NAMES)}
    assert components["database"]["ok"] and components["database"]["last_error"] is None
    assert components["database"]["last_success"] is not None
    for name in PROJECTION_NAMES:
        projection = components[f"projection {name}"]
        assert projection["ok"] and projection["last_success"] is not None, projection
        assert projection["events_behind"] >= 0

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ALTER TABLE ledger_checkpoints RENAME TO ledger_checkpoints_away")
        failing = (await ready(lambda c: not c["sealer"]["ok"]))["sealer"]
        assert "ledger_checkpoints" in failing["last_error"], failing
        await conn.execute("ALTER TABLE ledger_checkpoints_away RENAME TO ledger_checkpoints")
        back = (await ready(lambda c: c["sealer"]["ok"]))["sealer"]
        assert back["last_error"] == failing["last_error"] and back["last_success"] > back["last_error_at"]
    finally:
        await conn.execute("ALTER TABLE IF EXISTS ledger_checkpoints_away RENAME TO ledger_checkpoints")
        await conn.close()

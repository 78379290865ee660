"""Hostile input: every malformed, oversized or odd request gets a clear 4xx problem
response and writes nothing (the events table is counted before and after).

Free-text fields are text, not code: a SQL-injection-looking summary is a valid
fact and is stored byte for byte; the same strings in identifier fields (keys,
party codes, item ids, dates, enums) are refused. Either way nothing else changes.

Over 300 lines on purpose: one table of hostile inputs with the problem each must
get, read by a few generic checks.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.reliability.conftest import PARTIES, event_count, live_server, make_app, problem_of

TRIED: dict[str, int] = {}

INJECTIONS = [
    "'; DROP TABLE events; --",
    "\" OR \"1\"=\"1",
    "1; UPDATE events SET type = 'x'; --",
    "') ON CONFLICT DO NOTHING; DELETE FROM streams; --",
    "$1::text || pg_sleep(5)",
    "%s%s%s%n",
    "\\x00\\u0000",
    "<script>alert(1)</script>",
    "../../../../etc/passwd",
    "${jndi:ldap://127.0.0.1/a}",
]

OPEN = {"title": "Hostile talks", "slug": "hostile", "parties": PARTIES, "occurred_on": "2022-03-01"}

TEMPLATES: list[dict[str, Any]] = [
    {"type": "statement.made", "occurred_on": "2022-03-03", "speaker": "Lavrov", "party": "RU",
     "summary": "talks are difficult", "assessment": "neutral",
     "source": {"outlet": "RBC", "url": "https://rbc.ru/a", "speaker": "Lavrov", "quote": "q",
                "published_on": "2022-03-16"},
     "note": "n", "claimed_by": ["RU"]},
    {"type": "issue.raised", "occurred_on": "2022-03-02", "issue": "neutrality", "title": "Neutral status",
     "category": "political_status", "raised_by": "RU"},
    {"type": "position.stated", "occurred_on": "2022-03-04", "issue": "security", "party": "RU",
     "stance": "demands", "summary": "guarantees", "conditions": ["no weapons"]},
    {"type": "proposal.made", "occurred_on": "2022-03-05", "issue": "security", "proposal_id": "p-1",
     "by": "RU", "to": ["UA"], "summary": "a proposal", "terms": "terms"},
    {"type": "ceasefire.proposed", "occurred_on": "2022-03-06", "ceasefire_id": "cf-1", "by": "RU",
     "scope": "local", "area": "Mariupol", "starts_at": "2022-03-07"},
    {"type": "corridor.proposed", "occurred_on": "2022-03-06", "corridor_id": "c-1", "by": "RU",
     "from": "Mariupol", "to": "Zaporizhzhia", "via": "Berdyansk", "window": "09:00-21:00",
     "purpose": "evacuation"},
    {"type": "party.joined", "occurred_on": "2022-03-02", "party": {"code": "TR", "name": "Turkey"},
     "role": "host"},
]


def _string_leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _string_leaves(item, (*path, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    copied = copy.deepcopy(value)
    target = copied
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copied


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


@pytest.fixture
async def hostile(client, keys, database_url):
    response = await client.post("/negotiations", json=OPEN, headers=keys.headers("recorder"))
    assert response.status_code == 201, response.text
    security = {"type": "issue.raised", "occurred_on": "2022-03-02", "issue": "security",
                "title": "Security guarantees", "category": "security_guarantees"}
    response = await client.post("/negotiations/hostile/commands", json=security, headers=keys.headers("recorder"))
    assert response.status_code == 201, response.text
    return client


async def _refused(client, database_url, method: str, url: str, *, expect: set[int] | None = None,
                   **kwargs: Any) -> dict[str, Any]:
    before = await event_count(database_url)
    response = await client.request(method, url, **kwargs)
    where = f"{method} {url[:80]} {kwargs.get('headers', {}).get('Content-Type', '')}: {response.status_code} {response.text[:300]}"
    assert 400 <= response.status_code < 500, where
    if expect is not None:
        assert response.status_code in expect, where
    body = problem_of(response)
    assert body.get("detail"), where
    assert await event_count(database_url) == before, where
    TRIED["refused"] = TRIED.get("refused", 0) + 1
    return body


async def test_malformed_bodies_are_refused_and_write_nothing(hostile, keys, database_url):
    client = hostile
    recorder = keys.headers("recorder", **{"Content-Type": "application/json"})
    statement = json.dumps(TEMPLATES[0]).encode()
    bodies: list[tuple[str, bytes, set[int]]] = [
        ("oversized", b'{"type": "statement.made", "summary": "' + b"x" * (1024 * 1024 + 10) + b'"}', {413}),
        ("deep arrays", b"[" * 100_000 + b"]" * 100_000, {400}),
        ("deep objects", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, {400}),
        ("huge string", json.dumps({**TEMPLATES[0], "summary": "x" * 900_000}).encode(), {400, 422}),
        ("huge note", json.dumps({**TEMPLATES[0], "note": "n" * 100_000}).encode(), {400, 422}),
        ("invalid utf-8", statement.replace(b"talks are difficult", b"talks \xff\xfe are \xc3\x28"), {400}),
        ("overlong utf-8", statement.replace(b"Lavrov", b"\xc0\xafLavrov", 1), {400}),
        ("lone surrogate escape", statement.replace(b"difficult", b"\\ud800"), {400, 422}),
        ("escaped NUL", statement.replace(b"difficult", b"diff\\u0000icult"), {400}),
        ("raw NUL", statement.replace(b"difficult", b"diff\x00icult"), {400}),
        ("NUL in key", statement.replace(b'"summary"', b'"sum\\u0000mary"'), {400}),
        ("unknown field", json.dumps({**TEMPLATES[0], "is_admin": True}).encode(), {400}),
        ("unknown nested field", json.dumps({**TEMPLATES[0], "source": {"outlet": "x", "evil": 1}}).encode(), {400}),
        ("unknown type", json.dumps({**TEMPLATES[0], "type": "events.truncated"}).encode(), {400}),
        ("no type", json.dumps({k: v for k, v in TEMPLATES[0].items() if k != "type"}).encode(), {400}),
        ("empty", b"", {400}),
        ("whitespace", b"   \n", {400}),
        ("null", b"null", {400}),
        ("array", b"[]", {400}),
        ("string", b'"statement.made"', {400}),
        ("number", b"1e999999", {400}),
        ("truncated", statement[:-5], {400}),
        ("trailing garbage", statement + b"}{", {400}),
        ("two documents", statement + b"\n" + statement, {400}),
        ("BOM", b"\xef\xbb\xbf" + statement, {400}),
        ("string version", json.dumps({**TEMPLATES[0], "expected_version": "1"}).encode(), {400}),
        ("negative version", json.dumps({**TEMPLATES[0], "expected_version": -1}).encode(), {400}),
        ("huge version", json.dumps({**TEMPLATES[0], "expected_version": 2**80}).encode(), {400, 409}),
        ("float version", json.dumps({**TEMPLATES[0], "expected_version": 1.5}).encode(), {400}),
        ("bad date", json.dumps({**TEMPLATES[0], "occurred_on": "2022-02-30"}).encode(), {400, 422}),
        ("bad enum", json.dumps({**TEMPLATES[0], "assessment": "ecstatic"}).encode(), {400}),
        ("empty batch", b'{"commands": []}', {400}),
        ("batch too long", json.dumps({"commands": [TEMPLATES[0]] * 101}).encode(), {400}),
        ("batch with one bad", json.dumps({"commands": [TEMPLATES[0], {**TEMPLATES[0], "party": "ZZ"}]}).encode(),
         {400, 422}),
        ("many claims", json.dumps({**TEMPLATES[0], "claimed_by": ["RU"] * 10_000}).encode(), {400, 422}),
    ]
    for path in ("/negotiations/hostile/commands", "/negotiations"):
        for name, body, expect in bodies:
            if path == "/negotiations" and name in ("unknown type", "no type", "bad enum", "batch with one bad"):
                continue  # those are about commands
            await _refused(client, database_url, "POST", path, content=body, headers=recorder, expect=expect)
    TRIED["malformed bodies"] = len(bodies) * 2


async def test_wrong_content_types_are_415(hostile, keys, database_url):
    body = json.dumps(TEMPLATES[0]).encode()
    types = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
             "application/xml", "application/jsonx", "text/json", "", "application/octet-stream"]
    for content_type in types:
        headers = keys.headers("recorder")
        if content_type:
            headers["Content-Type"] = content_type
        for path in ("/negotiations/hostile/commands", "/negotiations"):
            await _refused(hostile, database_url, "POST", path, content=body, headers=headers, expect={415})
    TRIED["content types"] = len(types) * 2


async def test_sql_injection_strings_in_every_field(hostile, keys, database_url):
    """Identifier fields refuse them (4xx, nothing written); free text stores them
    exactly. The log stays intact and verifiable."""
    client = hostile
    headers = keys.headers("recorder")
    stored = refused = 0
    for number, template in enumerate(TEMPLATES):
        for path in _string_leaves(template):
            if path == ("type",):
                continue
            for injection in INJECTIONS:
                command = _replace(template, path, injection)
                # Items that introduce something need a fresh id each time.
                for id_field in ("proposal_id", "ceasefire_id", "corridor_id"):
                    if id_field in command and path != (id_field,):
                        command[id_field] = f"{command[id_field]}-{stored + refused}"
                if command["type"] == "issue.raised" and path != ("issue",):
                    command["issue"] = f"issue-{stored + refused}"
                if command["type"] == "party.joined" and path != ("party", "code"):
                    command["party"]["code"] = f"P{stored + refused}"
                before = await event_count(database_url)
                response = await client.post("/negotiations/hostile/commands", json=command, headers=headers)
                where = f"{path} = {injection!r}: {response.status_code} {response.text[:300]}"
                if 200 <= response.status_code < 300:
                    stored += 1
                    event = response.json()["events"][-1]
                    assert len(response.json()["events"]) <= 2, where
                    served = {**event["data"], "source": event.get("source"), "claimed_by": event.get("claimed_by"),
                              "note": event.get("note"), "occurred_on": event.get("occurred_on")}
                    assert _get(served, path) == injection, where
                    assert await event_count(database_url) == before + len(response.json()["events"]), where
                else:
                    assert 400 <= response.status_code < 500, where
                    problem_of(response)
                    assert await event_count(database_url) == before, where
                    refused += 1
        # The same strings as an opening's fields.
    for path in _string_leaves(OPEN):
        for injection in INJECTIONS:
            body = _replace(OPEN, path, injection)
            if path != ("slug",):
                body["slug"] = f"open-{stored + refused}"
            before = await event_count(database_url)
            response = await client.post("/negotiations", json=body, headers=headers)
            if response.status_code == 201:
                stored += 1
                assert _get({**response.json()["events"][0]["data"], "occurred_on": body["occurred_on"]}, path) == injection
            else:
                assert 400 <= response.status_code < 500, response.text
                problem_of(response)
                assert await event_count(database_url) == before
                refused += 1
    assert stored > 50 and refused > 50, (stored, refused)
    TRIED["injection stored verbatim"] = stored
    TRIED["injection refused"] = refused
    # Nothing was altered: every stream's chain verifies, the schema is whole.
    verify = await client.get("/audit/verify", headers=keys.headers("auditor"))
    assert verify.status_code == 200, verify.text
    assert verify.json()["ok"] is True, verify.text
    written = (await client.get("/events", params={"limit": 1000}, headers=keys.headers("auditor"))).json()["items"]
    assert len(written) == await event_count(database_url)


async def test_a_forged_consistency_token_is_refused_at_once(hostile, keys):
    """A token that names no recorded write would only ever time out (a 503
    after the token wait); it is refused with a 400 instead, whatever its size."""
    for token in ("99999999999999999999.1", "1.99999999999999999999", "9223372036854775807.1", "99999999999.654321"):
        response = await hostile.get("/negotiations/hostile", params={"consistency_token": token},
                                     headers=keys.headers("reader"))
        assert response.status_code == 400, response.text
        assert problem_of(response)["type"].endswith("invalid-parameter")
    real = (await hostile.post("/negotiations/hostile/commands", json=TEMPLATES[0],
                               headers=keys.headers("recorder"))).json()["consistency_token"]
    response = await hostile.get("/negotiations/hostile", params={"consistency_token": real},
                                 headers=keys.headers("reader"))
    assert response.status_code == 200, response.text


async def test_odd_headers_are_refused(hostile, keys, database_url):
    body = json.dumps(TEMPLATES[0]).encode()
    cases = [
        {"Idempotency-Key": "k" * 10_000},
        {"Idempotency-Key": ""},
        {"Idempotency-Key": "'; DROP TABLE idempotency_keys; --\u00e9".encode()},
        {"If-Match": "garbage"},
        {"If-Match": '"-1"'},
        {"If-Match": '"99999999999999999999999"'},
    ]
    tried = 0
    for extra in cases:
        headers = keys.headers("recorder", **{"Content-Type": "application/json", **extra})
        before = await event_count(database_url)
        response = await hostile.post("/negotiations/hostile/commands", content=body, headers=headers)
        tried += 1
        # A long or odd Idempotency-Key may be accepted as a key; what must never
        # happen is a 5xx, or a write without a clear 2xx.
        assert response.status_code < 500, (extra, response.text)
        if response.status_code >= 400:
            problem_of(response)
            assert await event_count(database_url) == before
    TRIED["odd headers"] = tried


async def _raw(base: str, request_line: bytes, headers: dict[str, str], body: bytes = b"") -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request with the path exactly as given (no client normalisation)."""
    parts = urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    head = request_line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for name, value in {**headers, "Content-Length": str(len(body))}.items():
        head += f"{name}: {value}\r\n".encode()
    writer.write(head + b"\r\n" + body)
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    response_headers = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        response_headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), response_headers, payload


ODD_REFS = [
    b"..", b"..%2F..%2Fevents", b"%2e%2e", b"%00", b"matrix%00", b"hostile%00", b"%2F", b"%5C..%5C",
    b"x" * 8000, "\u00e9t\u00e9-\u2603-\U0001f54a".encode(), b"%E2%98%83", b"%FF%FE", b"%C0%AF",
    b"'%20OR%201=1--", b"hostile'%3B%20DROP%20TABLE%20events%3B--", b"%25", b"%", b"00000000-0000-0000-0000-000000000000",
    b"{ref}", b"hostile;x=1", b"HOSTILE", b"-1", b"%20", b"%0d%0aX-Injected:%201",
]


async def test_odd_refs_in_paths(database_url, tmp_path, keys):
    """Raw request lines, so that nothing normalises `..` or percent-escapes first."""
    app = make_app(database_url, tmp_path)
    async with live_server(app) as base, httpx.AsyncClient(base_url=base, headers=keys.headers("recorder")) as http:
        assert (await http.post("/negotiations", json=OPEN)).status_code == 201
        tried = 0
        server_errors: list[str] = []
        for ref in ODD_REFS:
            targets = [
                (b"GET", b"/negotiations/" + ref),
                (b"GET", b"/negotiations/" + ref + b"/issues"),
                (b"GET", b"/negotiations/hostile/issues/" + ref),
                (b"GET", b"/negotiations/hostile/issues/" + ref + b"/history"),
                (b"GET", b"/negotiations/" + ref + b"/timeline"),
                (b"POST", b"/negotiations/" + ref + b"/commands"),
                (b"GET", b"/negotiations/hostile?as_of=" + ref),
                (b"GET", b"/negotiations?cursor=" + ref),
                (b"GET", b"/negotiations/hostile/timeline?limit=" + ref),
                (b"GET", b"/negotiations?party=" + ref),
                (b"GET", b"/negotiations/hostile?consistency_token=" + ref),
                (b"GET", b"/negotiations?status=" + ref),
                (b"GET", b"/negotiations/hostile/issues?category=" + ref + b"&party=" + ref),
                (b"GET", b"/negotiations/hostile/issues/security/history?cursor=" + ref),
            ]
            for method, target in targets:
                before = await event_count(database_url)
                body = json.dumps(TEMPLATES[0]).encode() if method == b"POST" else b""
                status, headers, payload = await _raw(
                    base, method + b" " + target + b" HTTP/1.1",
                    {**keys.headers("recorder"), "Content-Type": "application/json"}, body,
                )
                tried += 1
                where = f"{method.decode()} {target[:100]!r}: {status} {payload[:300]!r}"
                assert "x-injected" not in headers, where
                if status >= 500:
                    server_errors.append(where)
                    continue
                assert await event_count(database_url) == before or (status == 201 and ref == b"HOSTILE"), where
                if status < 400:
                    # A few are harmless spellings of real things (a trailing %20 is
                    # not one): only reads may succeed, and nothing is written.
                    assert method == b"GET", where
                    continue
                assert 400 <= status < 500, where
                if status == 400 and not headers.get("content-type", "").startswith("application/problem+json"):
                    # uvicorn refuses a malformed request line before the app sees it.
                    assert payload.strip() == b"Invalid HTTP request received.", where
                    continue
                assert headers.get("content-type", "").startswith("application/problem+json"), where
                assert json.loads(payload)["status"] == status, where
        assert not server_errors, "\n".join(server_errors)
        TRIED["odd paths"] = tried


def test_zz_report_counts(capsys):
    """Prints how many hostile inputs were tried (read by bench/soak_hostile.py's report)."""
    with capsys.disabled():
        print(f"\nhostile inputs: {TRIED}")

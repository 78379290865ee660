"""Two app instances (as with `parley serve --workers 2`) on one database agree:
nothing that matters for correctness lives in a process."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from domain.example import COMMANDS, OPENED
from tests.api.conftest import make_app

BASE = "/negotiations/russia-ukraine-2022"


async def test_two_instances_agree(database_url, tmp_path, keys):
    async with AsyncTestClient(make_app(database_url, tmp_path / "a")) as one, \
            AsyncTestClient(make_app(database_url, tmp_path / "b")) as two:
        recorder, reader = keys.headers("recorder"), keys.headers("reader")
        assert (await one.post("/negotiations", json=OPENED, headers=recorder)).status_code == 201
        # The slug is taken for the other instance too.
        assert (await two.post("/negotiations", json=OPENED, headers=recorder)).status_code == 409

        # Commands alternating between both, on the same stream: each instance
        # decides on the other's writes. (AsyncTestClient runs one request at a
        # time; tests/reliability/test_real_concurrency.py races two instances.)
        statements = [{"type": "statement.made", "occurred_on": "2022-03-16", "speaker": f"s{i}", "summary": "said"}
                      for i in range(10)]
        responses = [await (one if i % 2 else two).post(f"{BASE}/commands", json=s, headers=recorder)
                     for i, s in enumerate(statements)]
        assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses]
        assert [r.json()["events"][0]["version"] for r in responses] == list(range(2, 12))

        # One Idempotency-Key retried through both instances writes once.
        headers = {**recorder, "Idempotency-Key": "shared"}
        first = await one.post(f"{BASE}/commands", json={"commands": COMMANDS}, headers=headers)
        again = await two.post(f"{BASE}/commands", json={"commands": COMMANDS}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.headers["idempotent-replayed"] == "true" and again.content == first.content

        # Write through one, read through the other with the consistency token.
        token = first.json()["consistency_token"]
        for path in (BASE, f"{BASE}/issues", f"{BASE}/issues/ceasefire", f"{BASE}/timeline"):
            a = await one.get(path, params={"consistency_token": token}, headers=reader)
            b = await two.get(path, params={"consistency_token": token}, headers=reader)
            assert a.status_code == b.status_code == 200, path
            assert a.content == b.content and a.headers["etag"] == b.headers["etag"], path
        assert (await two.get(f"{BASE}/issues/ceasefire", headers=reader)).json()["status"] == "agreed"

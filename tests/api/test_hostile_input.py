"""Never a 500 for bad input: every field of real commands replaced by hostile values."""

from __future__ import annotations

import json
import random

from domain.example import COMMANDS

HOSTILE = [None, 0, -1, 2**70, 1.5, True, "", "\u0000", "a\u0000b", "x" * 5000, [], {}, [[[[[[[[]]]]]]]],
           {"$ref": "#"}, "2022-02-30", "\ud800", "<script>", "../../etc/passwd", "'; DROP TABLE events; --",
           ["\u0000"], {"\u0000": 1}, "9999-12-31T23:59:59+14:00", "0000-01-01"]
ACCEPTABLE = {201, 400, 404, 409, 412, 413, 415, 422}


async def test_hostile_field_values_are_refused_cleanly(api, client, keys):
    await api.open()
    rng = random.Random(20220316)
    path = "/negotiations/russia-ukraine-2022/commands"
    headers = keys.headers("recorder", **{"Content-Type": "application/json"})
    failures = []
    for _ in range(250):
        command = dict(rng.choice(COMMANDS))
        field = rng.choice([*command, "extra"])
        command[field] = rng.choice(HOSTILE)
        body = json.dumps(rng.choice([command, {"commands": [command]}])).encode()
        response = await client.post(path, content=body, headers=headers)
        if response.status_code not in ACCEPTABLE or (
            response.status_code != 201 and not response.headers["content-type"].startswith("application/problem+json")
        ):
            failures.append((field, command[field], response.status_code, response.text[:200]))
    assert not failures, failures[:5]

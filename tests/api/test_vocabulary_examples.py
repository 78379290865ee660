"""docs/vocabulary.md "Every command, by example", posted: every block fenced
```json command``` of the page, in order, through the real app — the first as
the body of `POST /negotiations`, the others as single commands on that
negotiation — so an example that drifts from the vocabulary (a renamed field, a
rule it breaks) fails here. Each is also decoded with msgspec against the
command union first, for a message that names the field. Every command type of
domain/commands.py must have an example."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from domain.commands import COMMAND_CLASSES, Command, OpenNegotiation

PAGE = Path(__file__).resolve().parents[2] / "docs" / "vocabulary.md"
EXAMPLE = re.compile(r"^```json command\n(?P<body>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def examples() -> list[tuple[int, dict]]:
    text = PAGE.read_text()
    return [(text.count("\n", 0, m.start()) + 1, msgspec.json.decode(m["body"])) for m in EXAMPLE.finditer(text)]


def test_every_command_type_has_an_example() -> None:
    found = [body.get("type", "negotiation.opened") for _, body in examples()]
    assert found[0] == "negotiation.opened", "the first example opens the negotiation the others record on"
    missing = {cls.__struct_config__.tag for cls in COMMAND_CLASSES} - set(found)
    assert missing == set(), f"docs/vocabulary.md has no example of {sorted(missing)}"
    assert found.count("negotiation.opened") == 1


async def test_the_examples_are_recorded_in_order_through_the_api(api) -> None:
    (line, opened), *commands = examples()
    msgspec.convert(opened, OpenNegotiation)
    slug = opened["slug"]
    written = (await api.open(opened))["events"]
    for line, body in commands:
        where = f"docs/vocabulary.md:{line} ({body['type']})"
        if "event_id" in body:  # the page's rule: the event written by the block just before
            assert len(written) == 1, f"{where}: the block before wrote {len(written)} events"
            body = {**body, "event_id": written[0]["id"]}
        try:
            msgspec.convert(body, Command)
        except msgspec.ValidationError as error:
            raise AssertionError(f"{where}: not a command of the vocabulary: {error}") from None
        response = await api.client.post(
            f"/negotiations/{slug}/commands", json=body, headers=api.keys.headers("recorder")
        )
        assert response.status_code == 201, f"{where}: {response.status_code} {response.text}"
        written = response.json()["events"]
        assert {e["type"] for e in written} >= {body["type"]}, f"{where}: wrote {[e['type'] for e in written]}"

    # What the last blocks did, read at least as new as the last write.
    token = response.json()["consistency_token"]
    view = await api.get(f"/negotiations/{slug}", consistency_token=token)
    assert view["status"] == "active"  # concluded, then reopened
    timeline = await api.get(f"/negotiations/{slug}/timeline", limit=500, consistency_token=token)
    assert [e["retracted"] for e in timeline["items"] if e["type"] == "statement.made"] == [True]
    corridors = await api.get(f"/negotiations/{slug}/issues/humanitarian-corridors", consistency_token=token)
    assert [(i["id"], i["disputed"]) for i in corridors["items"] if i["disputed"]] == [("sumy-poltava", True)]

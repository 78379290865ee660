"""`parley import` through the real command line on the test databases: an
export with agreements covering several issues (one command, one event per
covered issue, a default issue raised on the way) restores to the same facts and
the same replayed views; the issue's bad lines are refused naming line and rule,
writing nothing of them (issue 14 item 7, issue 13 leftover)."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest

from service.cli.parley import main
from service.store.canonical import chain_hash
from tests.api.test_world_agreements import GFA, GFA_IMPLEMENTATION, GFA_SIGNING

# One agreement on two issues, one of them a default issue not raised yet: the
# command decides [issue.raised, agreement.reached x 2] in one transaction.
CEASEFIRE_TERMS = [
    {"type": "agreement.reached", "occurred_on": "1997-07-20", "issues": ["decommissioning", "ceasefire"],
     "agreement_id": "ira-ceasefire-terms", "level": "final", "parties": ["UK", "SF"],
     "summary": "Terms of the renewed IRA ceasefire"},
    {"type": "agreement.implemented", "occurred_on": "1997-07-21", "agreement_id": "ira-ceasefire-terms",
     "extent": "minimal"},
]


def _commands(tmp_path) -> str:
    path = tmp_path / "gfa.ndjson"
    lines = [GFA, *GFA_SIGNING[:3], *CEASEFIRE_TERMS, *GFA_SIGNING[3:], *GFA_IMPLEMENTATION]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def _export(url: str, tmp_path, name: str) -> list[dict]:
    path = tmp_path / name
    assert main(["--database-url", url, "audit", "export", "-o", str(path)]) == 0
    return [json.loads(line) for line in path.read_text().splitlines()]


def _replay(path, capsys) -> list:
    capsys.readouterr()
    assert main(["audit", "replay", str(path)]) == 0
    return json.loads(capsys.readouterr().out)


def _migrate(url: str) -> None:
    assert main(["--database-url", url, "migrate"]) == 0


def test_an_export_with_multi_issue_agreements_restores_through_the_cli(database_url, empty_database_url, tmp_path,
                                                                        capsys):
    assert main(["--database-url", database_url, "import", _commands(tmp_path)]) == 0
    source = _export(database_url, tmp_path, "source.ndjson")
    covered = [line for line in source if line["type"].startswith("agreement.") and line["data"].get("issues")]
    assert len(covered) == 3 + 2  # the Belfast Agreement on three issues, the ceasefire terms on two
    steps = [line for line in source if line["data"].get("agreement_id") == "ira-ceasefire-terms"]
    assert sorted(line["data"]["issue"] for line in steps) == ["ceasefire", "ceasefire", "decommissioning",
                                                              "decommissioning"]

    _migrate(empty_database_url)
    capsys.readouterr()
    assert main(["--database-url", empty_database_url, "import", str(tmp_path / "source.ndjson")]) == 0
    assert f"{len(source)} events written" in capsys.readouterr().err
    target = _export(empty_database_url, tmp_path, "target.ndjson")
    assert len(target) == len(source)
    by_id = {line["id"]: line for line in target}
    for line in source:
        twin = by_id[line["id"]]
        for field in ("stream_id", "version", "type", "data", "occurred_on", "negotiation_id"):
            assert twin[field] == line[field], (field, line["type"])
        # The source's record time and recorder are only a claim beside this log's own.
        assert twin["import_claim"] == {"hash": line["hash"], "recorded_at": line["recorded_at"],
                                        "recorded_by": line["recorded_by"]}
        assert twin["recorded_at"] > line["recorded_at"] and twin["recorded_by"] == "import"
    # Every view replays the same from both logs, but for this log's own record
    # times and places in it on the timeline.
    def comparable(replayed: list) -> list:
        for negotiation in replayed:
            for entry in negotiation["timeline"]:
                del entry["recorded_at"], entry["position"]
        return replayed

    assert comparable(_replay(tmp_path / "target.ndjson", capsys)) == comparable(
        _replay(tmp_path / "source.ndjson", capsys))
    # Importing it again writes nothing.
    assert main(["--database-url", empty_database_url, "import", str(tmp_path / "source.ndjson")]) == 0
    assert f"{len(source)} already recorded" in capsys.readouterr().err


def _after(lines: list[dict], like: dict, **changes: object) -> dict:
    """A line after `like`'s stream's last line with its body changed as asked,
    chained from that line's hash: a line that verifies on its own terms."""
    last = [line for line in lines if line["stream_id"] == like["stream_id"]][-1]
    body = {**json.loads(last["body"]), "id": str(uuid.uuid4()), "version": last["version"] + 1, **changes}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    served = {**last, **{k: v for k, v in body.items() if k in last and k != "recorded_at"}, "body": text}
    served["hash"] = chain_hash(bytes.fromhex(last["hash"]), text.encode()).hex()
    return served


def _count(url: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SELECT count(*) FROM events")
        finally:
            await conn.close()

    return asyncio.run(count())


@pytest.mark.parametrize("case", ["second-conclusion", "unexpected-data", "one-copy-of-a-multi-issue-step"])
def test_bad_export_lines_are_refused_by_the_cli_naming_line_and_rule(
    case, database_url, empty_database_url, tmp_path, capsys
):
    assert main(["--database-url", database_url, "import", _commands(tmp_path)]) == 0
    lines = _export(database_url, tmp_path, "source.ndjson")
    opened = lines[0]
    if case == "second-conclusion":
        # The GFA log concluded on 1998-04-10; the API refuses another with 409.
        bad = _after(lines, opened, type="negotiation.concluded", data={"outcome": "again"},
                     recorded_by="un-secretary-general")
        file_lines, expected = [*lines, bad], "negotiation-concluded"
    elif case == "unexpected-data":
        bad = _after(lines, opened, type="party.joined", data={"unexpected": 1})
        file_lines, expected = [*lines, bad], "states no command the rules accept"
    else:
        # The Belfast Agreement's signature on one of its three issues only.
        signed = [line for line in lines if line["type"] == "agreement.signed"]
        assert len(signed) == 3
        bad = signed[0]
        file_lines = [line for line in lines if line["type"] != "agreement.signed" or line is bad]
        # What follows the missing copies on their streams cannot come in either;
        # the import stops at the first line it cannot place.
        expected = "agreement.signed"
    path = tmp_path / "bad.ndjson"
    path.write_text("".join(json.dumps(line) + "\n" for line in file_lines))
    _migrate(empty_database_url)
    capsys.readouterr()
    assert main(["--database-url", empty_database_url, "import", str(path)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    number = file_lines.index(bad) + 1
    assert error.startswith(f"parley import: line {number}:"), error
    assert expected in error, error
    # Everything before the bad line went in, nothing of it nor after it.
    assert _count(empty_database_url) == file_lines.index(bad)

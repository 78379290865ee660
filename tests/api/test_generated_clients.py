"""Generated clients as tests (issue 16): what client developers get from the
committed `openapi/openapi.json`.

* Python: openapi-python-client (a dev dependency, pinned) generates a client,
  and a short scenario runs through it against the real app behind a real
  uvicorn: open a negotiation and retry it with the same Idempotency-Key (the
  stored response, `Idempotent-Replayed`), record a typed command, read with the
  consistency token, a conditional GET (304), `If-Match` with the ETag read (201,
  then 412 as a typed Problem), typed enums and typed event `data`.
* TypeScript: openapi-typescript turns the document into types and a small
  client module using them is compiled by `tsc --strict` (including lines that
  must *not* compile). It needs node and npm (the npm registry or its cache);
  without them the test is skipped with a loud reason, and PARLEY_REQUIRE_NODE=1
  (set by .ci/run) turns that skip into a failure.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.api.conftest import make_app
from tests.reliability.conftest import live_server

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "openapi" / "openapi.json"
OPENAPI_TYPESCRIPT = "openapi-typescript@7.13.0"
TYPESCRIPT = "typescript@5.9.3"
# openapi-python-client knows no NDJSON: the export is read as bytes.
CONFIG = 'content_type_overrides:\n  application/x-ndjson: application/octet-stream\nproject_name_override: parley-client\n'


def _generate_python_client(where: Path) -> None:
    config = where / "config.yaml"
    config.write_text(CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    result = subprocess.run(
        [str(generator), "generate", "--path", str(DOCUMENT), "--meta", "none", "--config", str(config),
         "--output-path", str(where / "parley_client")],
        cwd=where, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every operation and every schema is generated: nothing skipped with a warning.
    assert "Unable to" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert "will be omitted" not in result.stdout + result.stderr, result.stdout + result.stderr


async def test_a_generated_python_client_drives_the_api(database_url, keys, tmp_path):
    _generate_python_client(tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        await _python_scenario(database_url, keys, tmp_path)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "parley_client" or m.startswith("parley_client.")]:
            del sys.modules[name]


async def _python_scenario(database_url, keys, tmp_path) -> None:
    client_module = importlib.import_module("parley_client")
    models = importlib.import_module("parley_client.models")
    api = "parley_client.api."
    open_negotiation = importlib.import_module(api + "negotiations.open_negotiation")
    record_commands = importlib.import_module(api + "negotiations.record_commands")
    get_issue = importlib.import_module(api + "issues.get_issue")
    list_issues = importlib.import_module(api + "issues.list_issues")

    (tmp_path / "data").mkdir()
    async with live_server(make_app(database_url, tmp_path / "data")) as base:
        recorder = client_module.AuthenticatedClient(base_url=base, token=keys.keys["recorder"])
        reader = client_module.AuthenticatedClient(base_url=base, token=keys.keys["reader"])
        body = models.OpenNegotiation(
            title="Generated talks", slug="generated", occurred_on="2022-02-28",
            parties=[models.Party(code="RU", name="Russia"), models.Party(code="UA", name="Ukraine")],
        )
        first = await open_negotiation.asyncio_detailed(client=recorder, body=body, idempotency_key="open-1")
        assert first.status_code == 201, first.content
        again = await open_negotiation.asyncio_detailed(client=recorder, body=body, idempotency_key="open-1")
        assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
        assert again.content == first.content  # the stored response, nothing written twice
        opened = first.parsed
        [event] = opened.events
        assert isinstance(event, models.NegotiationOpenedEvent)  # the union, by its `type`
        assert event.data.title == "Generated talks" and event.data.parties[1].code == "UA"

        # A command: its class is its type (the tag is not written again).
        raise_issue = models.RaiseIssue(issue="security", title="Security guarantees",
                                        category=models.RaiseIssueCategory.SECURITY_GUARANTEES,
                                        occurred_on="2022-03-01")
        recorded = await record_commands.asyncio_detailed(ref="generated", client=recorder, body=raise_issue)
        assert recorded.status_code == 201, recorded.content
        token = recorded.parsed.consistency_token
        assert isinstance(recorded.parsed.events[0], models.IssueRaisedEvent)

        read = await get_issue.asyncio_detailed(ref="generated", key="security", client=reader,
                                                consistency_token=token)
        assert read.status_code == 200, read.content
        view = read.parsed
        assert view.status == models.IssueViewStatus.RAISED
        assert view.category == models.IssueViewCategory.SECURITY_GUARANTEES
        etag = read.headers["ETag"]
        # A conditional GET: nothing sent again while nothing changed.
        unchanged = await get_issue.asyncio_detailed(ref="generated", key="security", client=reader,
                                                     if_none_match=etag)
        assert unchanged.status_code == 304 and unchanged.content == b""

        # If-Match with the ETag read: once, then 412 as a typed problem.
        discuss = models.DiscussIssue(issue="security", occurred_on="2022-03-02")
        guarded = await record_commands.asyncio_detailed(ref="generated", client=recorder, body=discuss,
                                                         if_match=etag, idempotency_key="discuss-1")
        assert guarded.status_code == 201, guarded.content
        retried = await record_commands.asyncio_detailed(ref="generated", client=recorder, body=discuss,
                                                         if_match=etag, idempotency_key="discuss-1")
        assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
        stale = await record_commands.asyncio_detailed(ref="generated", client=recorder, body=discuss,
                                                       if_match=etag)
        assert stale.status_code == 412, stale.content
        assert isinstance(stale.parsed, models.Problem)
        assert stale.parsed.type_ == "urn:parley:problem:precondition-failed" and stale.parsed.current_version == 2

        page = await list_issues.asyncio_detailed(ref="generated", client=reader, limit=1,
                                                  status=models.ListIssuesStatus.UNDER_DISCUSSION)
        assert page.status_code == 200, page.content
        assert [v.key for v in page.parsed.items] == ["security"]


TYPESCRIPT_CLIENT = textwrap.dedent(
    """
    import type { components, paths } from "./schema";

    type Schemas = components["schemas"];
    type Command = Schemas["Command"];

    // Optional fields are optional: no claimed_by, expected_version, note, source.
    const join: Command = { type: "party.joined", occurred_on: "2022-03-01", party: { code: "BY", name: "Belarus" } };
    const batch: Schemas["CommandBatch"] = { commands: [join] };
    const opened: Schemas["OpenNegotiation"] = {
      title: "Talks", occurred_on: "2022-02-28", parties: [{ code: "RU", name: "Russia" }],
    };

    // Closed vocabularies are string unions.
    const status: Schemas["IssueView"]["status"] = "proposal_on_table";
    const stance: Schemas["PositionView"]["stance"] = "open_to";
    // @ts-expect-error: not a status
    const wrong: Schemas["IssueView"]["status"] = "nope";

    // Events: a union on `type`, each with its own data.
    function describe(event: Schemas["Event"]): string {
      switch (event.type) {
        case "party.joined":
          return event.data.party.code;
        case "proposal.made":
          return event.data.proposal_id;
        default:
          return event.type;
      }
    }

    // The headers a client sends and reads are declared.
    type Post = paths["/negotiations/{ref}/commands"]["post"];
    const headers: NonNullable<Post["parameters"]["header"]> = { "Idempotency-Key": "k-1", "If-Match": "\\"7\\"" };
    type IssueGet = paths["/negotiations/{ref}/issues/{key}"]["get"];
    const conditional: NonNullable<IssueGet["parameters"]["header"]> = { "If-None-Match": "\\"x\\"" };
    type Replayed = Post["responses"][201]["headers"]["Idempotent-Replayed"];
    type Problem = Schemas["Problem"];
    const problem: Problem = { type: "urn:parley:problem:invalid-date", title: "Invalid date", status: 422 };

    export { join, batch, opened, status, stance, wrong, describe, headers, conditional, problem };
    export type { Replayed };
    """
)


def _node_tools() -> tuple[str, str] | None:
    node, npm = shutil.which("node"), shutil.which("npm")
    return (node, npm) if node and npm else None


def test_generated_typescript_types_compile_with_tsc_strict(tmp_path):
    tools = _node_tools()
    if tools is None:
        reason = "node and npm are not installed: the TypeScript types were NOT generated or compiled"
        if os.environ.get("PARLEY_REQUIRE_NODE") == "1":
            pytest.fail(reason + " (PARLEY_REQUIRE_NODE=1)")
        pytest.skip(reason)
    _, npm = tools
    (tmp_path / "package.json").write_text('{"name": "parley-types-check", "private": true}')
    install = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent", OPENAPI_TYPESCRIPT, TYPESCRIPT],
                             cwd=tmp_path, capture_output=True, text=True, timeout=600)
    if install.returncode != 0:
        reason = f"npm could not install {OPENAPI_TYPESCRIPT} and {TYPESCRIPT}: {install.stderr[-500:]}"
        if os.environ.get("PARLEY_REQUIRE_NODE") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    bin_dir = tmp_path / "node_modules" / ".bin"
    generated = subprocess.run([str(bin_dir / "openapi-typescript"), str(DOCUMENT), "-o", "schema.ts"],
                               cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    (tmp_path / "client.ts").write_text(TYPESCRIPT_CLIENT)
    compiled = subprocess.run(
        [str(bin_dir / "tsc"), "--strict", "--noEmit", "--target", "es2020", "--module", "es2020",
         "--moduleResolution", "node", "client.ts"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    # The check can fail: a field the document does not have is refused.
    (tmp_path / "bad.ts").write_text('import type { components } from "./schema";\n'
                                     'const x: components["schemas"]["JoinParty"] = '
                                     '{ type: "party.joined", occurred_on: "2022-03-01", '
                                     'party: { code: "BY", name: "B" }, colour: "red" };\nexport { x };\n')
    refused = subprocess.run([str(bin_dir / "tsc"), "--strict", "--noEmit", "bad.ts"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "colour" in refused.stdout, refused.stdout

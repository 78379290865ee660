"""The OpenAPI document: committed copy is current, every operation is documented,
the command union has its discriminator, and real problems match the documented shape.

Regenerate after changing routes: `uv run parley openapi > openapi/openapi.json`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec

from domain.commands import COMMAND_CLASSES
from service.http import openapi
from service.http.auth import PUBLIC_PATHS
from service.http.problems import InvalidField, Problem
from tests.api.conftest import make_app

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def current(tmp_path) -> bytes:
    return openapi.encode(openapi.document(make_app("postgresql://unused/db", tmp_path)))


def test_the_committed_document_is_current(tmp_path):
    assert COMMITTED.read_bytes() == current(tmp_path), (
        "openapi/openapi.json is stale: run `uv run parley openapi > openapi/openapi.json`"
    )


def test_every_operation_is_documented(tmp_path):
    document = json.loads(current(tmp_path))
    assert document["openapi"].startswith("3.1")
    operation_ids = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            operation_ids.append(operation.get("operationId"))
            assert operation.get("operationId") and operation.get("summary"), where
            responses = operation["responses"]
            if not any(re.search(pattern, path) for pattern in PUBLIC_PATHS):
                for status in ("401", "403"):
                    assert status in responses, where
            if "requestBody" in operation:
                for status in ("400", "413", "415"):
                    assert status in responses, where
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    assert list(response["content"]) == ["application/problem+json"], (where, status)
    assert len(operation_ids) == len(set(operation_ids))


def test_the_command_union_has_a_discriminator(tmp_path):
    document = json.loads(current(tmp_path))
    command = document["components"]["schemas"]["Command"]
    assert command["discriminator"]["propertyName"] == "type"
    mapping = command["discriminator"]["mapping"]
    assert set(mapping) == {cls.__struct_config__.tag for cls in COMMAND_CLASSES}
    assert {ref["$ref"] for ref in command["oneOf"]} == set(mapping.values())
    body = document["paths"]["/negotiations/{ref}/commands"]["post"]["requestBody"]["content"]["application/json"]
    assert {"$ref": "#/components/schemas/Command"} in body["schema"]["oneOf"]
    # Unknown fields are refused, and the schema says so.
    assert document["components"]["schemas"]["JoinParty"]["additionalProperties"] is False


class _StrictInvalidField(InvalidField, forbid_unknown_fields=True):
    pass


class _StrictProblem(Problem, forbid_unknown_fields=True):
    errors: list[_StrictInvalidField] | None = None


async def test_served_document_and_real_problems_match_it(api, client, keys):
    served = await client.get("/schema/openapi.json")
    assert served.status_code == 200
    assert served.content == COMMITTED.read_bytes()
    await api.open()
    problems = [
        await client.post("/negotiations/russia-ukraine-2022/commands", json={"type": "party.joined"},
                          headers=keys.headers("recorder")),
        await client.get("/negotiations", params={"limit": "x"}, headers=keys.headers("reader")),
        await client.get("/negotiations/russia-ukraine-2022", params={"as_of": "x"}, headers=keys.headers("reader")),
        await client.get("/negotiations"),
        await client.post("/negotiations", json={}, headers=keys.headers("reader")),
        await client.get("/nowhere", headers=keys.headers("reader")),
    ]
    for response in problems:
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = msgspec.json.decode(response.content, type=_StrictProblem)
        assert problem.status == response.status_code
        assert re.fullmatch(r"urn:parley:problem:[a-z0-9-]+", problem.type)
        for field in problem.errors or []:
            assert field.pointer is not None or field.parameter is not None


async def test_the_reference_page_works_offline(client):
    page = await client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert not re.search(r"(src|href)=\"https?://", page.text)
    for asset in re.findall(r"(?:src|href)=\"(/docs/[^\"]+)\"", page.text):
        response = await client.get(asset)
        assert response.status_code == 200 and response.content, asset
    init = await client.get("/docs/init.js")
    assert "http" not in init.text
    displayed = (await client.get("/docs/openapi.json")).json()
    assert displayed["openapi"] == "3.0.3"
    assert "/negotiations/{ref}/commands" in displayed["paths"]
    assert (await client.get("/docs/assets/../../etc/passwd")).status_code == 404


# --- what generators need (service/http/openapi_contract.py, issue 16) ---------------


def _nodes(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def test_every_closed_vocabulary_is_a_typed_enum(tmp_path):
    document = json.loads(current(tmp_path))
    enums = [n for n in _nodes(document) if isinstance(n.get("enum"), list)]
    assert len(enums) > 25
    for node in enums:
        assert node.get("type") == "string" and None not in node["enum"], node
    schemas = document["components"]["schemas"]
    for view, field in (("IssueView", "status"), ("IssueView", "category"), ("ProposalView", "status"),
                        ("ItemView", "state"), ("PositionView", "stance"), ("JoinParty", "role"),
                        ("HoldRound", "level"), ("AgreementView", "state")):
        assert '"enum"' in json.dumps(schemas[view]["properties"][field]), (view, field)


def test_request_fields_with_defaults_are_optional_and_tags_are_consts(tmp_path):
    document = json.loads(current(tmp_path))
    schemas = document["components"]["schemas"]
    for cls in COMMAND_CLASSES:
        schema = schemas[cls.__name__]
        tag = cls.__struct_config__.tag
        assert schema["properties"]["type"] == {"const": tag, "default": tag, "type": "string"}
        for name, prop in schema["properties"].items():
            if name != "type":
                assert "default" not in prop, (cls.__name__, name)
        optional = {f.encode_name for f in msgspec.structs.fields(cls) if not f.required}
        assert not optional & set(schema["required"]), cls.__name__
    # Optional query parameters are their value type alone.
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if not parameter.get("required"):
                    text = json.dumps(parameter["schema"])
                    assert '"null"' not in text, parameter


def test_headers_429_503_and_date_errors_are_declared(tmp_path):
    document = json.loads(current(tmp_path))
    conditional = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            names = {p["name"] for p in operation.get("parameters", [])}
            where = f"{method} {path}"
            if "401" in responses:
                assert {"429", "503"} <= set(responses), where
                assert "Retry-After" in responses["429"]["headers"] and "Retry-After" in responses["503"]["headers"]
            else:
                assert operation["security"] == [], where
            if names & {"as_of", "known_at", "recorded_after", "recorded_before"}:
                assert "422" in responses, where
            if "304" in responses:
                conditional += 1
                assert "If-None-Match" in names, where
                assert {"ETag", "Cache-Control"} <= set(responses["200"]["headers"]), where
            if "cursor" in names and method == "get":
                assert "Link" in responses["200"]["headers"], where
            for response in responses.values():
                for header in response.get("headers", {}).values():
                    assert "schema" in header, where
    assert conditional >= 6
    commands = document["paths"]["/negotiations/{ref}/commands"]["post"]
    assert {"Idempotency-Key", "If-Match"} <= {p["name"] for p in commands["parameters"]}
    assert "Idempotent-Replayed" in commands["responses"]["201"]["headers"]
    opened = document["paths"]["/negotiations"]["post"]["responses"]["201"]["headers"]
    assert {"Location", "Idempotent-Replayed"} <= set(opened)
    assert "Retry-After" in commands["responses"]["409"]["headers"]


def test_every_problem_type_the_code_answers_is_listed(tmp_path):
    from service.http.openapi_contract import problem_types

    root = COMMITTED.parents[1] / "service"
    found = set()
    for source in root.rglob("*.py"):
        text = source.read_text()
        found |= set(re.findall(r'TYPE_PREFIX \+ "([a-z0-9-]+)"', text))
        found |= set(re.findall(r'ProblemError\(\s*\d{3},\s*"([a-z0-9-]+)"', text))
        found |= set(re.findall(r'slug="([a-z0-9-]+)"', text))
        found |= set(re.findall(r'^\s+\d{3}: \("([a-z0-9-]+)"', text, re.M))
    assert len(found) > 15
    listed = problem_types()
    assert found <= set(listed), found - set(listed)
    assert {"unknown-party", "proposal-closed", "invalid-date"} <= set(listed)
    document = json.loads(current(tmp_path))
    described = document["components"]["schemas"]["Problem"]["properties"]["type"]["description"]
    assert all(f"`{slug}`" in described for slug in listed)


def test_events_are_a_tagged_union_with_typed_data(tmp_path):
    from domain.events import EVENT_TYPES

    document = json.loads(current(tmp_path))
    schemas = document["components"]["schemas"]
    union = schemas["Event"]
    mapping = union["discriminator"]["mapping"]
    assert union["discriminator"]["propertyName"] == "type" and set(mapping) == set(EVENT_TYPES)
    for event_type, ref in mapping.items():
        variant = schemas[ref.rsplit("/", 1)[1]]
        assert variant["properties"]["type"] == {"const": event_type, "type": "string"}
        data = variant["properties"]["data"]["$ref"].rsplit("/", 1)[1]
        assert schemas[data]["type"] == "object" and data == EVENT_TYPES[event_type].__name__
    for holder, field in (("EventList", "items"), ("EventPage", "items"), ("CommandResult", "events")):
        assert schemas[holder]["properties"][field]["items"] == {"$ref": "#/components/schemas/Event"}
    export = document["paths"]["/audit/export"]["get"]["responses"]["200"]["content"]["application/x-ndjson"]
    assert export["itemSchema"] == {"$ref": "#/components/schemas/ExportedEvent"}
    assert "Newline-delimited" in export["schema"]["description"]

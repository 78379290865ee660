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

"""Every fact an export serves beside its hashed body is compared with that body,
field by field, by both offline verifiers: the project's (service.audit.offline)
and the independent one written from docs/audit-format.md alone. Changing any one
served field, body untouched, must be named — else a reader of the served fields
could be told something the hash never covered."""

from __future__ import annotations

import json
import uuid

import pytest

from service.audit.offline import verify_export
from tests.independent import verifier as independent

from .conftest import Writer
from .test_tamper import export

# At least these are served beside the body; the test fails if the export stops
# carrying one (it would then pass for want of anything to compare).
CORE_FIELDS = {"id", "stream_id", "stream_type", "version", "type", "schema_version", "occurred_on",
               "recorded_at", "recorded_by", "data", "claimed_by", "source", "note", "negotiation_id"}
# docs/audit-format.md section 2: the envelope members that are not facts (not hashed).
NOT_FACTS = {"body", "hash", "position", "checkpoint", "leaf_index", "receipt"}


def changed(name: str, value: object) -> object:
    """Another value of the same shape, so only the comparison can catch it."""
    if name == "recorded_at":
        return "2001" + str(value)[4:]
    if name == "occurred_on":
        return "2001" + str(value)[4:] if value else "2001-01-01"
    if name == "import_claim":
        return {"hash": "00" * 32, "recorded_at": "2001-01-01T00:00:00.000000Z", "recorded_by": "forged"}
    if name == "source":
        return {**(value or {}), "outlet": "forged"}
    if name.endswith("_id") or name == "id":
        return str(uuid.uuid4())
    if isinstance(value, bool) or value is None:
        return "forged"
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, list):
        return [*value, "ZZ"]
    if isinstance(value, dict):
        return {**value, "forged": 1}
    raise AssertionError(f"no rule to change {name}={value!r}")


async def served_fields(writer: Writer, pool) -> tuple[list[bytes], list[str]]:
    await writer.write(3)
    lines = await export(pool)
    line = json.loads(lines[1])
    body = json.loads(line["body"])
    assert set(body) <= set(line) | {"prev"}, "a body member the envelope does not serve"
    fields = sorted(set(line) - NOT_FACTS)
    assert CORE_FIELDS <= set(fields), CORE_FIELDS - set(fields)
    return lines, fields


async def test_every_served_field_is_compared_with_the_hashed_body(pool, writer: Writer) -> None:
    lines, fields = await served_fields(writer, pool)
    caught = []
    for name in fields:
        line = json.loads(lines[1])
        line[name] = changed(name, line[name])
        tampered = [*lines[:1], json.dumps(line).encode(), *lines[2:]]

        report = verify_export(tampered)
        assert not report.ok, f"the project's verifier missed a changed {name}"
        mismatch = next(p for p in report.mismatches if p.line == 2)
        assert mismatch.kind == "body_mismatch" and name in mismatch.detail, (name, mismatch)

        body = json.loads(line["body"])
        assert name in independent.disagreements(line, body), f"the independent verifier missed a changed {name}"
        caught.append(name)
    print(f"\n{len(caught)} served fields, each caught by both verifiers: {', '.join(caught)}")


@pytest.mark.parametrize("name", ["data", "type", "recorded_at"])
async def test_an_untouched_field_is_not_reported(pool, writer: Writer, name: str) -> None:
    """The comparison is not merely always-failing: the same value re-serialised passes."""
    lines, _ = await served_fields(writer, pool)
    line = json.loads(lines[1])
    rewritten = [*lines[:1], json.dumps(line, indent=None, separators=(", ", ": ")).encode(), *lines[2:]]
    assert verify_export(rewritten).ok
    assert name not in independent.disagreements(line, json.loads(line["body"]))

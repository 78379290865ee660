"""What makes the OpenAPI document good for client generators (issue 16).

Applied by service.http.openapi.finish after Litestar and msgspec have produced
the document; each step is checked by tests/api/test_openapi.py and by the
generated clients of tests/api/test_generated_clients.py:

* every closed vocabulary is an `enum` *with* `"type": "string"` (msgspec omits
  the type; openapi-typescript then makes the field `unknown`);
* a command's `type` is a `const` (the union's discriminator says it once);
* fields of request bodies that have a default are optional: the default moves
  into the description (openapi-typescript makes every property with a
  `default` required, so `party.joined` without `note` would not compile);
* an optional query parameter is its value type alone, not `[..., null]`;
* every header a client uses is declared: `If-None-Match` on conditional reads,
  `ETag`, `Cache-Control`, `Link` on their answers, `Idempotent-Replayed` and
  `Location` on 201s, `Retry-After` on 409/429/503;
* 429 (failed-authentication throttle) and 503 (database unavailable) wherever a
  key is checked or the database is read;
* `Problem.type` lists every problem type the API answers;
* events as served are a tagged union on `type` whose `data` is that event
  type's payload schema (domain.events);
* the NDJSON export says what each line is.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import msgspec

from domain import errors as domain_errors
from domain.events import EVENT_TYPES
from service.http.auth import PUBLIC_PATHS

REF = "#/components/schemas/{name}"

# Every problem type the service answers besides the domain's own codes (kept
# complete by tests/api/test_openapi.py, which reads the code for slugs).
SERVICE_PROBLEM_TYPES = (
    "bad-request", "body-required", "consistency-timeout", "event-unreadable", "forbidden", "http-error", "idempotency-key-in-use",
    "idempotency-key-reused", "invalid-date", "invalid-parameter", "invalid-receipt", "invalid-request", "malformed-json",
    "method-not-allowed", "no-checkpoint", "no-such-tile", "not-acceptable", "not-found", "not-sealed",
    "payload-too-large", "precondition-failed", "projection-stuck", "server-error", "slug-taken",
    "too-many-failed-authentications", "too-many-requests", "too-many-streams",
    "unauthenticated", "unavailable", "unsupported-media-type", "version-conflict",
)


def domain_problem_types() -> list[str]:
    found, pending = set(), [domain_errors.DomainError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if getattr(cls, "code", None):
            found.add(cls.code)
    return sorted(found)


def problem_types() -> list[str]:
    return sorted(set(SERVICE_PROBLEM_TYPES) | set(domain_problem_types()))


def _walk(node: Any, visit: Any) -> None:
    if isinstance(node, dict):
        visit(node)
        for value in node.values():
            _walk(value, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, visit)


def _typed_enums(node: dict[str, Any]) -> None:
    values = node.get("enum")
    if isinstance(values, list) and None in values and isinstance(node.get("type"), list):
        # A nullable enum: one string enum or null (not an enum of strings and null,
        # which generators turn into several identical enums).
        rest = [v for v in values if v is not None]
        node.pop("enum")
        node.pop("type")
        node["oneOf"] = [{"enum": rest, "type": "string"}, {"type": "null"}]
        return
    if isinstance(values, list) and values and "type" not in node and all(isinstance(v, str) for v in values):
        node["type"] = "string"


def _optional_request_fields(schema: dict[str, Any]) -> None:
    for prop in schema.get("properties", {}).values():
        if "default" in prop:
            default = prop.pop("default")
            note = f"Default: `{msgspec.json.encode(default).decode()}`."
            described = prop.get("description", "").rstrip(". ")
            prop["description"] = f"{described}. {note}" if described else note


def _const_tag(schema: dict[str, Any], tag_field: str = "type") -> None:
    """The tag of a request union member: a const with itself as default, so a
    generated class fills it in (written once: the class is the type)."""
    tag = schema.get("properties", {}).get(tag_field)
    if isinstance(tag, dict) and isinstance(tag.get("enum"), list) and len(tag["enum"]) == 1:
        value = tag["enum"][0]
        schema["properties"][tag_field] = {"const": value, "type": "string"}
        if tag_field in schema.get("required", []):  # a union member's tag (not the optional one of a lone body)
            schema["properties"][tag_field]["default"] = value


def _plain_optional_parameter(parameter: dict[str, Any]) -> None:
    schema = parameter.get("schema")
    if parameter.get("required") or not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        schema["type"] = rest[0] if len(rest) == 1 else rest
    if isinstance(schema.get("enum"), list):
        schema["enum"] = [v for v in schema["enum"] if v is not None]
    for union in ("oneOf", "anyOf"):
        options = schema.get(union)
        if isinstance(options, list) and {"type": "null"} in options:
            rest = [o for o in options if o != {"type": "null"}]
            schema.pop(union)
            if len(rest) == 1:
                schema.update(rest[0])
            else:
                schema[union] = rest


def _header(description: str, kind: str = "string") -> dict[str, Any]:
    return {"description": description, "schema": {"type": kind}, "required": False}


READ_RESPONSE_HEADERS = {
    "ETag": _header("Digest of the bytes served (a status view's also names its stream and version: send it as "
                    "`If-None-Match` to read again, as `If-Match` with a command)."),
    "Cache-Control": _header("`private, no-cache`: revalidate with If-None-Match."),
    "Vary": _header("`Authorization`."),
}
LINK = _header('`<…?cursor=…>; rel="next"` while there is a next page.')
RETRY_AFTER = _header("Seconds to wait before retrying.", "integer")
IF_NONE_MATCH = {
    "in": "header",
    "name": "If-None-Match",
    "required": False,
    "description": "An ETag this route served: 304 with no body while the answer is the same.",
    "schema": {"type": "string"},
}
DATE_PARAMETERS = {"as_of", "known_at", "recorded_after", "recorded_before"}
RESPONSE_FOR = {
    "429": "Too many failed authentications from this address (`Retry-After`)",
    "503": "The database is unavailable, or the read models are behind a consistency token (`Retry-After`)",
}


def _operation_headers(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    for response in responses.values():
        for header in response.get("headers", {}).values():
            header.setdefault("schema", {"type": "string"})
            header.pop("deprecated", None)
    if "304" in responses:
        parameters = operation.setdefault("parameters", [])
        if not any(p.get("name") == "If-None-Match" for p in parameters):
            parameters.append(dict(IF_NONE_MATCH))
        ok = responses.get("200")
        if ok is not None:
            headers = ok.setdefault("headers", {})
            headers.update({k: dict(v) for k, v in READ_RESPONSE_HEADERS.items()})
            names = {p.get("name") for p in parameters}
            if "cursor" in names:
                headers["Link"] = dict(LINK)
    if method == "get" and "cursor" in {p.get("name") for p in operation.get("parameters", [])}:
        ok = responses.get("200")
        if ok is not None:
            ok.setdefault("headers", {})["Link"] = dict(LINK)
    created = responses.get("201")
    if created is not None:
        headers = created.setdefault("headers", {})
        headers["Idempotent-Replayed"] = _header("`true` when this is the stored response of an earlier request "
                                                 "with the same Idempotency-Key (nothing was written).")
        if path == "/negotiations":
            headers["Location"] = _header("The new negotiation (`/negotiations/{id}`).")
    for response in responses.values():  # raw bytes (the public log's tiles)
        octets = response.get("content", {}).get("application/octet-stream")
        if octets is not None:
            octets["schema"] = {"type": "string", "format": "binary"}
    names = {p.get("name") for p in operation.get("parameters", [])}
    if names & DATE_PARAMETERS and "422" not in responses:
        responses["422"] = {
            "description": "A date or datetime parameter that does not parse (`invalid-date`, naming it)",
            "content": {"application/problem+json": {"schema": {"$ref": REF.format(name="Problem")}}},
        }
    # A key is checked here, so failed ones are throttled; the database is read.
    if "401" in responses:
        for status in ("429", "503"):
            if status not in responses:
                responses[status] = {
                    "description": RESPONSE_FOR[status],
                    "content": {"application/problem+json": {"schema": {"$ref": REF.format(name="Problem")}}},
                }
    for status in ("409", "429", "503"):
        if status in responses and "content" in responses[status]:
            responses[status].setdefault("headers", {})["Retry-After"] = dict(RETRY_AFTER)


def _event_union(schemas: dict[str, Any]) -> None:
    """`Event`: the envelope as a tagged union on `type`, with each type's `data`."""
    payloads = list(EVENT_TYPES.values())
    refs, components = msgspec.json.schema_components(payloads, ref_template=REF)
    mapping = {}
    for name, component in components.items():
        existing = schemas.get(name)
        if existing is not None and existing != component:
            name_clash = f"{name} is both a payload schema and another component"
            raise ValueError(name_clash)
        schemas[name] = component
    envelope = schemas["EventEnvelope"]
    # Each variant spells the envelope out (no allOf): generators cannot merge
    # the envelope's `type: string` with a variant's const.
    for (event_type, payload), ref in zip(EVENT_TYPES.items(), refs):
        variant = f"{payload.__name__}Event"
        schemas[variant] = {
            **copy.deepcopy(envelope),
            "title": variant,
            "description": f"A `{event_type}` event as served; `data` is its payload.",
        }
        schemas[variant]["properties"].update({"type": {"const": event_type, "type": "string"}, "data": ref})
        mapping[event_type] = REF.format(name=variant)
    schemas["Event"] = {
        "title": "Event",
        "description": "An event as served (command responses, history, /events): the envelope, tagged by `type`, "
        "with that type's `data`. `data` is the payload as stored at its `schema_version`; the schemas are the "
        "current versions.",
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "type", "mapping": mapping},
    }
    envelope["properties"]["data"] = {"type": "object", "description": "The fact's own fields (see `Event`)."}
    envelope["properties"]["type"] = {"type": "string", "description": "The event type (see `Event`)."}
    for holder in ("CommandResult", "EventList", "EventPage"):
        schema = schemas.get(holder)
        if schema is None:
            continue
        for prop in schema.get("properties", {}).values():
            if prop.get("items") == {"$ref": REF.format(name="EventEnvelope")}:
                prop["items"] = {"$ref": REF.format(name="Event")}


def _problem_types(schemas: dict[str, Any]) -> None:
    problem = schemas.get("Problem")
    if problem is None:
        return
    listed = ", ".join(f"`{slug}`" for slug in problem_types())
    problem["properties"]["type"] = {
        "type": "string",
        "description": "`urn:parley:problem:<slug>`, stable: switch on it. Every slug the API answers: " + listed + ".",
        "examples": ["urn:parley:problem:" + slug for slug in ("invalid-request", "invalid-date", "version-conflict")],
    }


def _ndjson(document: dict[str, Any]) -> None:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            ok = operation.get("responses", {}).get("200", {})
            content = ok.get("content", {})
            if "application/x-ndjson" in content:
                item = content["application/x-ndjson"].get("schema")
                content["application/x-ndjson"] = {
                    "schema": {
                        "type": "string",
                        "description": "Newline-delimited JSON (one document per line, each ending in \\n): "
                        "every line is an `ExportedEvent`.",
                    },
                    "itemSchema": item,
                }


def refine(document: dict[str, Any], request_components: set[str]) -> dict[str, Any]:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in request_components:
        schema = schemas.get(name)
        if schema is not None:
            _optional_request_fields(schema)
            _const_tag(schema)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if any(re.search(pattern, path) for pattern in PUBLIC_PATHS):
                operation["security"] = []  # served without a key
            for parameter in operation.get("parameters", []):
                _plain_optional_parameter(parameter)
            _operation_headers(path, method, operation)
    _event_union(schemas)
    _problem_types(schemas)
    _ndjson(document)
    _walk(document, _typed_enums)
    return document


__all__ = ["problem_types", "refine"]

"""Reading JSON request bodies strictly, with a problem for every way they go wrong.

Bodies are decoded here with msgspec (strict: no "5" for 5) rather than by
Litestar's `data` parameter, so that every refusal carries a JSON pointer into
the body as the client sent it, and hostile input (invalid UTF-8, deep nesting,
NUL characters, which PostgreSQL text and jsonb refuse) is answered with 400
before anything reaches the database.
"""

from __future__ import annotations

import hashlib
from typing import Any, TypeVar

import msgspec
from litestar import Request

from service.http.problems import InvalidField, ProblemError, field_from_message
from service.http.validation import Fault, faults

T = TypeVar("T")

_canonical = msgspec.json.Encoder(order="sorted")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def invalid_body(detail: str, pointer: str = "", slug: str = "invalid-request") -> ProblemError:
    return ProblemError(
        400, slug, "The request is not valid", detail, errors=[InvalidField(pointer=pointer, detail=detail)]
    )


async def read_body(request: Request) -> bytes:
    """The raw body of a JSON request: 415 for another media type, 413 (from
    Litestar) above the size limit, 400 when empty."""
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        raise ProblemError(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Send the body as application/json (got {content_type or 'no Content-Type'}).",
            headers={"Accept-Post": "application/json"},
        )
    body = await request.body()
    if not body.strip():
        raise invalid_body("The request body is empty; a JSON object is required.", slug="body-required")
    return body


def decode(body: bytes, type_: type[T] | Any, *, pointer_prefix: str = "") -> T:
    """Decode `body` as `type_`; every failure becomes a 400 problem with a pointer."""
    try:
        value = msgspec.json.decode(body, type=type_, strict=True)
    except msgspec.ValidationError as error:
        raise invalid_fields(body, type_, error, pointer_prefix) from None
    except UnicodeDecodeError:
        raise invalid_body("The body is not valid UTF-8.", slug="malformed-json") from None
    except RecursionError:
        raise invalid_body("The body is nested too deeply.", slug="malformed-json") from None
    except msgspec.DecodeError as error:
        raise invalid_body(f"The body is not valid JSON: {error}", slug="malformed-json") from None
    refuse_nul(value, pointer_prefix)
    return value


def invalid_fields(body: bytes, type_: Any, error: msgspec.ValidationError, pointer_prefix: str) -> ProblemError:
    """Every fault of a body that failed to decode (service.http.validation), at
    once: 422 `invalid-date` when only dates are wrong, else 400 `invalid-request`."""
    try:
        found = faults(msgspec.json.decode(body), type_)
    except (RecursionError, UnicodeDecodeError, msgspec.DecodeError, ValueError):
        # Not walkable (nested too deeply, bytes that are not UTF-8 in a string
        # msgspec had not reached yet): msgspec's first fault alone.
        found = []
    if not found:
        field = field_from_message(str(error))
        found = [Fault(field)]
    for fault in found:
        fault.field.pointer = pointer_prefix + (fault.field.pointer or "")
    fields = [fault.field for fault in found]
    if all(fault.date for fault in found):
        detail = fields[0].detail if len(fields) == 1 else f"{len(fields)} dates are not valid: " + " ".join(
            f.detail for f in fields
        )
        return ProblemError(422, "invalid-date", "Invalid date", detail, errors=fields)
    detail = fields[0].detail if len(fields) == 1 else f"{len(fields)} fields are not valid; see `errors`."
    return ProblemError(400, "invalid-request", "The request is not valid", detail, errors=fields)


def refuse_nul(value: Any, pointer: str = "") -> None:
    """PostgreSQL stores neither U+0000 in text nor `\\u0000` in jsonb: refuse it
    with a pointer to the field rather than fail in the database."""
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise invalid_body("Text may not contain the NUL character (U+0000).", pointer)
    elif isinstance(value, dict):
        for key, item in value.items():
            token = str(key).replace("~", "~0").replace("/", "~1")
            if "\x00" in str(key):
                raise invalid_body("Field names may not contain the NUL character (U+0000).", pointer)
            refuse_nul(item, f"{pointer}/{token}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            refuse_nul(item, f"{pointer}/{index}")


def request_digest(method: str, path: str, value: Any) -> bytes:
    """What makes two requests "the same" for an Idempotency-Key: method, path and
    the body's content (canonical JSON, so key order and whitespace do not count)."""
    digest = hashlib.sha256()
    digest.update(method.upper().encode() + b" " + path.encode() + b"\n")
    digest.update(_canonical.encode(msgspec.to_builtins(value)))
    return digest.digest()

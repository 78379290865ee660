"""Opaque page cursors: clients pass them back unchanged and never parse them."""

from __future__ import annotations

import base64
import binascii


# The kind of `GET /negotiations/{ref}/issues` cursors (the last key of the page
# before): the negotiation view hands one out for the issues it does not inline.
ISSUES = "issues.v1"


class InvalidCursor(ValueError):
    """A cursor this server did not issue (the API answers 400)."""


def encode(kind: str, *parts: object) -> str:
    text = "|".join([kind, *(str(p) for p in parts)])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode(kind: str, cursor: str, count: int) -> list[str]:
    """The `count` parts of a cursor of this `kind` (as text)."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor("not a cursor issued by this server") from None
    found_kind, *parts = text.split("|")
    if found_kind != kind or len(parts) != count:
        raise InvalidCursor("not a cursor for this list")
    return parts


def number(part: str, maximum: int) -> int:
    """A cursor's part as a number from 0 to `maximum` (what its column holds)."""
    if not (part.isascii() and part.isdigit()) or int(part) > maximum:
        raise InvalidCursor("not a cursor for this list")
    return int(part)

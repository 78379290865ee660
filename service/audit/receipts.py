"""Receipts (docs/audit-format.md §7): what the log signs for each event it
acknowledges, before the event is sealed.

A receipt is a C2SP signed note by the log's Ed25519 (0x01) key, key name = the
origin, whose body is six lines:

    parley-receipt/v1
    <origin>
    <event id, UUID text>
    <stream id, UUID text> <version>
    <event hash, 64 lowercase hex digits>
    <recorded_at, timestamp text YYYY-MM-DDTHH:MM:SS.ffffffZ>

The header line keeps a receipt from ever being read as a checkpoint (whose
first line is the origin) and the reverse. The event hash binds the whole hashed
body (its chain hash), so the receipt is the log's word that exactly this event
was recorded at that time at that place of its stream. A recorder keeps it and
later exchanges it (POST /ledger/receipts) for an inclusion proof in a signed
checkpoint; a receipt whose event is in no checkpoint is evidence that the log
dropped what it acknowledged.
"""

from __future__ import annotations

import re
import uuid

import msgspec

from service.audit.signed_note import NoteError, NoteVerifier, assemble_note, verify_note
from service.store.canonical import timestamp_text
from service.store.event_store import StoredEvent

HEADER = "parley-receipt/v1"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_BODY = re.compile(
    rf"{re.escape(HEADER)}\n(?P<origin>[^\n]+)\n(?P<id>{_UUID})\n(?P<stream>{_UUID}) (?P<version>[1-9][0-9]*)\n"
    r"(?P<hash>[0-9a-f]{64})\n(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)\n"
)


class Receipt(msgspec.Struct, frozen=True, kw_only=True):
    origin: str
    event_id: uuid.UUID
    stream_id: uuid.UUID
    version: int
    hash: bytes
    recorded_at: str  # timestamp text, as signed


def receipt_body(origin: str, event: StoredEvent) -> str:
    return (
        f"{HEADER}\n{origin}\n{event.id}\n{event.stream_id} {event.version}\n"
        f"{event.hash.hex()}\n{timestamp_text(event.recorded_at)}\n"
    )


def sign_receipt(key, event: StoredEvent) -> str:  # noqa: ANN001 - a service.audit.ledger.LedgerKey
    body = receipt_body(key.origin, event)
    return assemble_note(body, key.origin, key.public_key, key.private_key.sign(body.encode()))


def open_receipt(note: str, log: NoteVerifier) -> Receipt:
    """The receipt in `note` if the log's key signed it; NoteError otherwise (a bad
    signature by that key, none by it, or a body that is not a receipt)."""
    opened = verify_note(note, [log])
    found = _BODY.fullmatch(opened.body)
    if found is None:
        raise NoteError("the note is not a parley-receipt/v1 body")
    if found["origin"] != log.name:
        raise NoteError(f"the receipt is for log {found['origin']!r}, the key is for {log.name!r}")
    return Receipt(
        origin=found["origin"],
        event_id=uuid.UUID(found["id"]),
        stream_id=uuid.UUID(found["stream"]),
        version=int(found["version"]),
        hash=bytes.fromhex(found["hash"]),
        recorded_at=found["at"],
    )

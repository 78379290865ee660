"""What an auditor saved, read back for the offline checks (`parley audit verify`,
`prove`, `receipt`): checkpoints (the note, or the JSON of /ledger/checkpoints/N),
the log's public key, and witnesses' verifier keys. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from service.audit.record_time import Bound
from service.audit.signed_note import (
    CosignatureVerifier,
    NoteError,
    NoteVerifier,
    TreeHead,
    open_checkpoint,
    parse_checkpoint_body,
    split_note,
    verifier_from_vkey,
    verify_note,
)


def read_note(text: str) -> str:
    """A checkpoint as saved: the signed note itself, or the JSON of
    `GET /ledger/checkpoints/…` (its `note` member)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            note = msgspec.json.decode(stripped.encode(), type=dict[str, Any]).get("note")
        except msgspec.DecodeError as error:
            raise NoteError("the checkpoint file is neither a signed note nor checkpoint JSON") from error
        if not isinstance(note, str):
            raise NoteError("the checkpoint JSON has no `note`")
        return note
    return text


def read_verifier(text: str, note: str) -> NoteVerifier:
    """The public key as saved: a verifier key (`name+id+key`), the JSON of
    `GET /ledger/public-key`, or a PEM public key (named after the note's origin)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            vkey = msgspec.json.decode(stripped.encode(), type=dict[str, Any]).get("vkey")
        except msgspec.DecodeError as error:
            raise NoteError("the public key file is not readable JSON") from error
        if not isinstance(vkey, str):
            raise NoteError("the public key JSON has no `vkey`")
        return NoteVerifier.from_vkey(vkey)
    if stripped.startswith("-----BEGIN"):
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        from service.audit.signed_note import raw_public_key

        key = load_pem_public_key(stripped.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise NoteError("the PEM public key is not Ed25519")
        body, _ = split_note(note)
        return NoteVerifier(body.split("\n", 1)[0], raw_public_key(key))
    return NoteVerifier.from_vkey(stripped)


def verified_head(checkpoint_text: str, key_text: str) -> TreeHead:
    note = read_note(checkpoint_text)
    return open_checkpoint(note, read_verifier(key_text, note))


def read_witness_keys(text: str) -> list[CosignatureVerifier]:
    """Witnesses' verifier keys as saved: one per line (what `parley witness
    --print-vkey` prints), or PARLEY_WITNESSES entries (`<URL> <vkey>`, separated by
    commas or lines). Blank lines and lines starting with `#` are skipped. Every key
    must be a cosignature (0x04) key."""
    found = []
    for line in text.replace(",", "\n").splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        vkey = entry.split()[-1]  # `<URL> <vkey>` or the key alone
        verifier = verifier_from_vkey(vkey)
        if not isinstance(verifier, CosignatureVerifier):
            raise NoteError(f"{vkey!r} is not a witness's cosignature (0x04) key")
        found.append(verifier)
    if not found:
        raise NoteError("the file holds no witness verifier key")
    return found


class CosignedHead(msgspec.Struct, frozen=True):
    head: TreeHead
    bounds: list[Bound]  # one per verified witness cosignature on the note


def open_cosigned(note_text: str, log: NoteVerifier, witnesses: Sequence[CosignatureVerifier]) -> CosignedHead:
    """A saved checkpoint signed by the log (0x01), with every witness cosignature on
    it as a record-time bound (docs/audit-format.md §9). Strict: a signature by any
    of these keys that does not verify refuses the whole note. The log's own time
    (its 0x04 line) is not used: it binds the operator only."""
    note = read_note(note_text)
    opened = verify_note(note, [log, *witnesses])
    if not any(v.name == log.name and v.key_id == log.key_id for v in opened.verified):
        raise NoteError(f"the checkpoint is not signed by the log key {log.name}+{log.key_id.hex()}")
    head = parse_checkpoint_body(opened.body)
    if head.origin != log.name:
        raise NoteError(f"the checkpoint is for log {head.origin!r}, the key is for {log.name!r}")
    bounds = [Bound(head.tree_size, v.timestamp, v.name) for v in opened.verified if v.timestamp is not None]
    return CosignedHead(head, bounds)

"""Signed notes, checkpoints and cosignatures in the C2SP formats (signed-note,
tlog-checkpoint, tlog-cosignature).

Over 300 lines on purpose: the three C2SP formats are one family (a checkpoint is
the body of a signed note; a cosignature is a signature line of one), written and
parsed strictly in one place, so the signers and every verifier share exactly the
same bytes and the same refusals.

Pure, no I/O: the sealer and the witness sign with it; `/audit/verify`, the
offline verifier and the witness check with it. Following published formats means
an auditor can also check Parley's checkpoints with other transparency-log tools.

A checkpoint body is three lines, each ending in a newline:

    <origin>
    <tree size, decimal>
    <root hash, standard base64>

A signed note is a body, a blank line, and signature lines:

    — <key name> <base64(4-byte key id || signature)>

Two signature types are used (the byte in the key id and the verifier key):

- 0x01, Ed25519 over the body: key id = SHA-256(name || "\\n" || 0x01 || key)[:4].
- 0x04, a timestamped cosignature: the signature is an 8-byte big-endian POSIX
  time followed by Ed25519 over "cosignature/v1\\ntime <t>\\n" || body; key id =
  SHA-256(name || "\\n" || 0x04 || key)[:4]. Witnesses sign with it, and so does
  the log itself, so that the time it signed a checkpoint is signed too.

Parsing is strict (signed-note: "if a signature from a known key fails to verify,
clients SHOULD reject the whole note"): a note in which any signature by a known
key does not verify is refused, as is one in which none does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519_ALGORITHM = 0x01
COSIGNATURE_ALGORITHM = 0x04
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line
COSIGNATURE_HEADER = "cosignature/v1\n"
# signed-note: verifiers MUST accept at least 16 signatures; a bound keeps parsing cheap.
MAX_SIGNATURES = 64
MAX_NOTE_BYTES = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(ValueError):
    """A note or checkpoint that is malformed or not signed by the expected key."""


class TreeHead(msgspec.Struct, frozen=True):
    origin: str
    tree_size: int
    root: bytes


def checkpoint_body(head: TreeHead) -> str:
    return f"{head.origin}\n{head.tree_size}\n{base64.b64encode(head.root).decode()}\n"


def _decimal(text: str) -> int | None:
    """A decimal with no leading zeroes (the only form the C2SP texts allow)."""
    if not text.isascii() or not text.isdigit() or (text != "0" and text.startswith("0")):
        return None
    return int(text)


def parse_checkpoint_body(body: str) -> TreeHead:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(line == "" for line in lines[:-1]):
        raise NoteError("a checkpoint body is origin, size and root, each on its own non-empty line")
    origin, size, root = lines[0], _decimal(lines[1]), lines[2]
    if size is None or size >= 2**63:
        raise NoteError("checkpoint tree size is malformed")
    try:
        root_bytes = base64.b64decode(root, validate=True)
    except binascii.Error as error:
        raise NoteError("checkpoint root is not base64") from error
    if len(root_bytes) != 32:
        raise NoteError("checkpoint root is not a SHA-256 hash")
    return TreeHead(origin=origin, tree_size=size, root=root_bytes)


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: bytes, algorithm: int = ED25519_ALGORITHM) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([algorithm]) + public_key).digest()[:4]


def cosigned_message(body: str, timestamp: int) -> bytes:
    """What a tlog-cosignature/v1 signs: a header, the time, the whole note body."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{body}".encode()


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name or _CONTROL.search(name):
        raise NoteError(f"not a key name: {name!r}")


class Verified(msgspec.Struct, frozen=True, kw_only=True):
    """A signature that verified: whose it is, and the time it carries (cosignatures)."""

    name: str
    key_id: bytes
    algorithm: int
    timestamp: int | None = None  # POSIX seconds, for 0x04 cosignatures


class NoteVerifier:
    """A known key: a name, a signature type, an Ed25519 public key."""

    algorithm = ED25519_ALGORITHM

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_name(name)
        if len(public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")
        self.name = name
        self.public_key = public_key
        self.key_id = key_id(name, public_key, self.algorithm)
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    def pem(self) -> str:
        return self._key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([self.algorithm]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> "NoteVerifier":
        verifier = verifier_from_vkey(vkey)
        if not isinstance(verifier, cls):
            raise NoteError(f"the verifier key is not of signature type {cls.algorithm:#04x}")
        return verifier

    def _ed25519(self, message: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def verify(self, body: str, signature: bytes) -> bool:
        return len(signature) == 64 and self._ed25519(body.encode(), signature)

    def check(self, body: str, signature: bytes) -> Verified:
        """The signature's meaning, or NoteError if it does not verify."""
        if not self.verify(body, signature):
            raise NoteError(f"the signature by {self.name}+{self.key_id.hex()} does not verify")
        return Verified(name=self.name, key_id=self.key_id, algorithm=self.algorithm)


class CosignatureVerifier(NoteVerifier):
    """A cosigner's key (tlog-cosignature, type 0x04): the signature carries a time."""

    algorithm = COSIGNATURE_ALGORITHM

    def verify(self, body: str, signature: bytes) -> bool:
        if len(signature) != 72:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        return timestamp < 2**63 and self._ed25519(cosigned_message(body, timestamp), signature[8:])

    def check(self, body: str, signature: bytes) -> Verified:
        if not self.verify(body, signature):
            raise NoteError(f"the cosignature by {self.name}+{self.key_id.hex()} does not verify")
        return Verified(
            name=self.name,
            key_id=self.key_id,
            algorithm=self.algorithm,
            timestamp=int.from_bytes(signature[:8], "big"),
        )


def verifier_from_vkey(vkey: str) -> NoteVerifier:
    """A verifier key `<name>+<key id hex>+<base64(type || public key)>` of type 0x01 or 0x04."""
    name, _, rest = vkey.strip().partition("+")
    hex_id, _, encoded = rest.partition("+")
    try:
        raw = base64.b64decode(encoded, validate=True)
        claimed_id = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as error:
        raise NoteError("not a verifier key (name+keyid+base64 key)") from error
    kinds = {ED25519_ALGORITHM: NoteVerifier, COSIGNATURE_ALGORITHM: CosignatureVerifier}
    if len(raw) != 33 or raw[0] not in kinds or len(hex_id) != 8:
        raise NoteError("the verifier key is not an Ed25519 (0x01) or cosignature (0x04) key")
    verifier = kinds[raw[0]](name, raw[1:])
    if verifier.key_id != claimed_id:
        raise NoteError("the verifier key's id does not match its name and key")
    return verifier


# -- signing ----------------------------------------------------------------------


def signature_line(name: str, key_identifier: bytes, signature: bytes) -> str:
    return f"{SIGNATURE_PREFIX}{name} {base64.b64encode(key_identifier + signature).decode()}\n"


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    if not body.endswith("\n"):
        raise NoteError("a note body ends with a newline")
    public = raw_public_key(private_key.public_key())
    return assemble_note(body, name, public, private_key.sign(body.encode()))


def assemble_note(body: str, name: str, public_key: bytes, signature: bytes) -> str:
    """The signed note for an Ed25519 signature made earlier (stored apart from its text)."""
    return f"{body}\n{signature_line(name, key_id(name, public_key), signature)}"


def cosign(body: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> bytes:
    """A tlog-cosignature/v1 over `body` at `timestamp`: the 72 bytes after the key id."""
    if not 0 <= timestamp < 2**63:
        raise NoteError("a cosignature time is a POSIX time below 2^63")
    return timestamp.to_bytes(8, "big") + private_key.sign(cosigned_message(body, timestamp))


def cosignature_line(name: str, public_key: bytes, cosignature: bytes) -> str:
    return signature_line(name, key_id(name, public_key, COSIGNATURE_ALGORITHM), cosignature)


# -- parsing and verifying ----------------------------------------------------------


class NoteSignature(msgspec.Struct, frozen=True):
    name: str
    key_id: bytes
    signature: bytes  # what follows the key id


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """(body, signatures) of a signed note, refusing anything the format forbids."""
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise NoteError("the note is too large")
    if _CONTROL.search(note):
        raise NoteError("a signed note contains no control characters but newlines")
    if not note.endswith("\n"):
        raise NoteError("a signed note ends with a newline")
    body, separator, signatures = note[:-1].rpartition("\n\n")
    if not separator or not body:
        raise NoteError("a signed note is a body, a blank line and signature lines")
    body += "\n"
    found = []
    for line in signatures.split("\n"):
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"not a signature line: {line[:40]!r}")
        name, space, encoded = line.removeprefix(SIGNATURE_PREFIX).partition(" ")
        if not space or " " in encoded:
            raise NoteError(f"a signature line is a name and one base64 value: {line[:40]!r}")
        _check_name(name)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise NoteError("a signature is not base64") from error
        if len(raw) < 5:
            raise NoteError("a signature is too short")
        found.append(NoteSignature(name, raw[:4], raw[4:]))
    if len(found) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    return body, found


class OpenedNote(msgspec.Struct, frozen=True):
    body: str
    verified: list[Verified]


def verify_note(note: str, verifiers: Sequence[NoteVerifier]) -> OpenedNote:
    """Check every signature made by one of `verifiers` (matched by name AND key id;
    others are ignored, as signed-note requires). Refused if any of them fails, or
    if none is there."""
    body, signatures = split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = [
        known[(s.name, s.key_id)].check(body, s.signature) for s in signatures if (s.name, s.key_id) in known
    ]
    if not verified:
        names = ", ".join(f"{v.name}+{v.key_id.hex()}" for v in verifiers)
        raise NoteError(f"the note carries no signature by a known key ({names})")
    return OpenedNote(body, verified)


def open_note(note: str, verifier: NoteVerifier) -> str:
    """The body of `note` if `verifier` signed it (and no known signature fails)."""
    return verify_note(note, [verifier]).body


def open_checkpoint(note: str, verifier: NoteVerifier) -> TreeHead:
    opened = verify_note(note, [verifier])
    return _checked_head(opened, verifier)


def _checked_head(opened: OpenedNote, verifier: NoteVerifier) -> TreeHead:
    head = parse_checkpoint_body(opened.body)
    if head.origin != verifier.name:
        raise NoteError(f"the checkpoint is for log {head.origin!r}, the key is for {verifier.name!r}")
    return head


class CosignedCheckpoint(msgspec.Struct, frozen=True, kw_only=True):
    head: TreeHead
    # The log's own signed time (its 0x04 signature), if the note carries one.
    signed_at: int | None
    # Verified witness cosignatures: name -> POSIX time.
    cosigned: dict[str, int]


def open_cosigned_checkpoint(
    note: str, log: NoteVerifier, witnesses: Sequence[CosignatureVerifier] = (), *, log_time: NoteVerifier | None = None
) -> CosignedCheckpoint:
    """A checkpoint that the log signed (0x01), with every verifiable time on it: the
    log's own cosignature (`log_time`, 0x04 with the log's key) and the witnesses'.
    A signature by any of these keys that fails makes the whole note refused."""
    known: list[NoteVerifier] = [log, *witnesses] + ([log_time] if log_time is not None else [])
    opened = verify_note(note, known)
    if not any(v.key_id == log.key_id and v.name == log.name for v in opened.verified):
        raise NoteError(f"the checkpoint is not signed by the log key {log.name}+{log.key_id.hex()}")
    head = _checked_head(opened, log)
    signed_at = None
    cosigned: dict[str, int] = {}
    for v in opened.verified:
        if v.timestamp is None:
            continue
        if log_time is not None and v.key_id == log_time.key_id and v.name == log_time.name:
            signed_at = v.timestamp
        else:
            cosigned[v.name] = max(v.timestamp, cosigned.get(v.name, 0))
    return CosignedCheckpoint(head=head, signed_at=signed_at, cosigned=cosigned)


def log_time_verifier(log: NoteVerifier) -> CosignatureVerifier:
    """The log's key as a cosigner: how it signs the time of its own checkpoints."""
    return CosignatureVerifier(log.name, log.public_key)

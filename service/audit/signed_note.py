"""Signed checkpoints in the C2SP formats (signed-note and tlog-checkpoint).

Pure, no I/O: the sealer signs with it and the offline verifier checks with it.
Following published formats means an auditor can also check Parley's checkpoints
with other transparency-log tools, not only with Parley's own code.

A checkpoint body is three lines, each ending in a newline:

    <origin>
    <tree size, decimal>
    <root hash, standard base64>

The signed note is the body, a blank line, and one signature line:

    — <key name> <base64(4-byte key id || 64-byte Ed25519 signature over the body)>

with key id = SHA-256(<key name> || "\\n" || 0x01 || <32-byte public key>)[:4].
The verifier key is written `<name>+<key id hex>+<base64(0x01 || public key)>`.
Parley names its key after the log's origin.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519_ALGORITHM = 0x01
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space start every signature line


class NoteError(ValueError):
    """A note or checkpoint that is malformed or not signed by the expected key."""


class TreeHead(msgspec.Struct, frozen=True):
    origin: str
    tree_size: int
    root: bytes


def checkpoint_body(head: TreeHead) -> str:
    return f"{head.origin}\n{head.tree_size}\n{base64.b64encode(head.root).decode()}\n"


def parse_checkpoint_body(body: str) -> TreeHead:
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("a checkpoint body is origin, size and root, each on its own line")
    origin, size, root = lines[0], lines[1], lines[2]
    if not origin or not size.isdigit() or (size != "0" and size.startswith("0")):
        raise NoteError("checkpoint origin or tree size is malformed")
    try:
        root_bytes = base64.b64decode(root, validate=True)
    except binascii.Error as error:
        raise NoteError("checkpoint root is not base64") from error
    if len(root_bytes) != 32:
        raise NoteError("checkpoint root is not a SHA-256 hash")
    return TreeHead(origin=origin, tree_size=int(size), root=root_bytes)


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, public_key: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_ALGORITHM]) + public_key).digest()[:4]


class NoteVerifier:
    """Who may have signed a note: a key name and its Ed25519 public key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        if not name or any(c.isspace() for c in name) or "+" in name:
            raise NoteError(f"not a key name: {name!r}")
        if len(public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")
        self.name = name
        self.public_key = public_key
        self.key_id = key_id(name, public_key)
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    def pem(self) -> str:
        return self._key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    def vkey(self) -> str:
        encoded = base64.b64encode(bytes([ED25519_ALGORITHM]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def from_vkey(cls, vkey: str) -> "NoteVerifier":
        name, _, rest = vkey.strip().partition("+")
        hex_id, _, encoded = rest.partition("+")
        try:
            raw = base64.b64decode(encoded, validate=True)
            claimed_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError) as error:
            raise NoteError("not a verifier key (name+keyid+base64 key)") from error
        if len(raw) != 33 or raw[0] != ED25519_ALGORITHM:
            raise NoteError("the verifier key is not an Ed25519 key")
        verifier = cls(name, raw[1:])
        if verifier.key_id != claimed_id:
            raise NoteError("the verifier key's id does not match its name and key")
        return verifier

    def verify(self, body: str, signature: bytes) -> bool:
        try:
            self._key.verify(signature, body.encode())
        except InvalidSignature:
            return False
        return True


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    if not body.endswith("\n"):
        raise NoteError("a note body ends with a newline")
    public = raw_public_key(private_key.public_key())
    return assemble_note(body, name, public, private_key.sign(body.encode()))


def assemble_note(body: str, name: str, public_key: bytes, signature: bytes) -> str:
    """The signed note for a signature made earlier (stored apart from its text)."""
    line = base64.b64encode(key_id(name, public_key) + signature).decode()
    return f"{body}\n{SIGNATURE_PREFIX}{name} {line}\n"


def split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """(body, [(key name, key id, signature)]) of a signed note."""
    body, separator, signatures = note.rpartition("\n\n")
    if not separator:
        raise NoteError("a signed note is a body, a blank line and signature lines")
    body += "\n"
    found = []
    for line in signatures.split("\n"):
        if not line:
            continue
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError(f"not a signature line: {line[:40]!r}")
        name, _, encoded = line.removeprefix(SIGNATURE_PREFIX).rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as error:
            raise NoteError("a signature is not base64") from error
        if len(raw) < 5:
            raise NoteError("a signature is too short")
        found.append((name, raw[:4], raw[4:]))
    return body, found


def open_note(note: str, verifier: NoteVerifier) -> str:
    """The body of `note` if `verifier` signed it; NoteError otherwise."""
    body, signatures = split_note(note)
    for name, claimed_id, signature in signatures:
        if name == verifier.name and claimed_id == verifier.key_id and verifier.verify(body, signature):
            return body
    raise NoteError(f"the checkpoint is not signed by the key {verifier.name}+{verifier.key_id.hex()}")


def open_checkpoint(note: str, verifier: NoteVerifier) -> TreeHead:
    head = parse_checkpoint_body(open_note(note, verifier))
    if head.origin != verifier.name:
        raise NoteError(f"the checkpoint is for log {head.origin!r}, the key is for {verifier.name!r}")
    return head

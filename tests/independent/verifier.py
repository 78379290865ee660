"""An independent verifier of Parley exports, written from docs/audit-format.md
alone: the Python standard library and `cryptography`, and no Parley code.

    python tests/independent/verifier.py EXPORT --vkey VKEY [--checkpoint NOTE]...
        [--witness VKEY]... [--slack 30] [--skew 5]

Prints one line per problem and exits 1 if there is any, 0 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import sys
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EM_DASH = "\u2014 "


# -- signed notes (section 6) ----------------------------------------------------


class Key:
    def __init__(self, vkey: str) -> None:
        name, hex_id, material = vkey.strip().split("+", 2)  # base64 may hold "+"
        raw = base64.b64decode(material, validate=True)
        self.name, self.kind, self.raw = name, raw[0], raw[1:]
        self.id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
        if self.id.hex() != hex_id or self.kind not in (1, 4) or len(self.raw) != 32:
            raise ValueError(f"bad verifier key {vkey!r}")
        self.public = Ed25519PublicKey.from_public_bytes(self.raw)

    def check(self, text: str, sig: bytes) -> int | None:
        """None for a plain signature, the time for a cosignature; raises if bad."""
        if self.kind == 1:
            message, signature, when = text.encode(), sig, None
        else:
            if len(sig) != 72:
                raise ValueError("cosignature length")
            when = int.from_bytes(sig[:8], "big")
            message, signature = f"cosignature/v1\ntime {when}\n{text}".encode(), sig[8:]
        self.public.verify(signature, message)  # raises InvalidSignature
        return when


def open_note(note: str, keys: list[Key]) -> tuple[str, list[tuple[Key, int | None]]]:
    if any(ord(c) < 0x20 and c != "\n" for c in note) or not note.endswith("\n"):
        raise ValueError("note has control characters or no final newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise ValueError("note has no blank line")
    text, lines = note[: cut + 1], note[cut + 2 : -1].split("\n")
    good = []
    for line in lines:
        if not line.startswith(EM_DASH):
            raise ValueError(f"bad signature line {line!r}")
        name, encoded = line[len(EM_DASH) :].split(" ")
        raw = base64.b64decode(encoded, validate=True)
        for key in keys:
            if key.name == name and key.id == raw[:4]:
                try:
                    good.append((key, key.check(text, raw[4:])))
                except (InvalidSignature, ValueError):
                    raise ValueError(f"signature by {name} does not verify") from None
    if not good:
        raise ValueError("no signature by a trusted key")
    return text, good


# -- the tree (section 4) ----------------------------------------------------------


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return sha(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


# -- the envelope against the body (section 2) ---------------------------------------


def instant(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def same_uuid(a: object, b: object) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return uuid.UUID(str(a)) == uuid.UUID(str(b))


def disagreements(line: dict, body: dict) -> list[str]:
    wrong = []
    for name in ("id", "stream_id", "negotiation_id", "correlation_id", "causation_id"):
        if not same_uuid(line.get(name), body.get(name)):
            wrong.append(name)
    for name in ("stream_type", "type", "occurred_on", "recorded_by", "note", "version", "schema_version"):
        if line.get(name) != body.get(name) or type(line.get(name)) is not type(body.get(name)):
            wrong.append(name)
    if line.get("claimed_by") != body.get("claimed_by", []):
        wrong.append("claimed_by")
    for name in ("source", "import_claim"):
        if line.get(name) != body.get(name):
            wrong.append(name)
    if line.get("data") != body.get("data"):
        wrong.append("data")
    recorded = body.get("recorded_at", "")
    if len(recorded) != 27 or not recorded.endswith("Z") or instant(line["recorded_at"]) != instant(recorded):
        wrong.append("recorded_at")
    return wrong


# -- the whole export (section 11) ------------------------------------------------------


def verify(
    lines: list[bytes],
    vkey: str,
    notes: list[str] = (),  # type: ignore[assignment]
    witnesses: list[str] = (),  # type: ignore[assignment]
    slack: float = 30,
    skew: float = 5,
) -> list[str]:
    problems: list[str] = []
    events = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            body_bytes = line["body"].encode("utf-8")
            body = json.loads(body_bytes)
            wrong = disagreements(line, body)
        except (ValueError, KeyError, TypeError) as error:
            problems.append(f"line {number}: unreadable ({error})")
            continue
        if wrong:
            problems.append(f"line {number}: served {', '.join(wrong)} differ from the hashed body")
        events.append((number, line, body_bytes, body))

    # Chains (section 3), in version order per stream.
    streams: dict[str, dict[int, tuple[int, bytes, str]]] = {}
    ids = set()
    for number, line, body_bytes, body in events:
        if body["id"] in ids:
            problems.append(f"line {number}: event {body['id']} appears twice")
        ids.add(body["id"])
        versions = streams.setdefault(body["stream_id"], {})
        if body["version"] in versions:
            problems.append(f"line {number}: version {body['version']} appears twice")
        versions[body["version"]] = (number, body_bytes, line["hash"])
    for stream, versions in streams.items():
        previous = bytes(32)
        for version in range(1, max(versions) + 1):
            if version not in versions:
                problems.append(f"stream {stream}: version {version} is missing")
                continue
            number, body_bytes, served = versions[version]
            computed = sha(previous + body_bytes)
            if computed.hex() != served:
                problems.append(f"line {number}: hash is not SHA-256(previous || body)")
            previous = bytes.fromhex(served)

    # Leaf order (section 5).
    sealed_leaves = []
    ended = False
    for number, line, _, _ in events:
        index = line.get("leaf_index")
        if index is None:
            ended = True
        elif ended or index != len(sealed_leaves):
            problems.append(f"line {number}: leaf_index {index} out of order")
        else:
            sealed_leaves.append(sha(b"\x00" + bytes.fromhex(line["hash"])))
    every_hash = [sha(b"\x00" + bytes.fromhex(line["hash"])) for _, line, _, _ in events]

    # Checkpoints and record time (sections 6 and 9).
    log = Key(vkey)
    times = [Key(w) for w in witnesses] + [Key(_as_cosigner(log))]
    bounds: list[tuple[int, int, str]] = []  # (size, time, who)
    for note in notes:
        try:
            text, signed = open_note(note, [log, *times])
        except ValueError as error:
            problems.append(f"checkpoint refused: {error}")
            continue
        origin, size_text, root_text = text.split("\n")[:3]
        if origin != log.name or not any(key is log for key, _ in signed):
            problems.append(f"checkpoint for {origin} is not signed by the log")
            continue
        size = int(size_text)
        if size > len(every_hash) or mth(every_hash[:size]) != base64.b64decode(root_text):
            problems.append(f"checkpoint {size}: the export does not give its root")
        for key, when in signed:
            if when is not None:
                bounds.append((size, when, key.name))

    for position, (number, line, _, body) in enumerate(events):
        recorded = instant(body["recorded_at"]).timestamp()
        leaf = line.get("leaf_index")
        index = leaf if leaf is not None else 1 << 62
        for size, when, who in bounds:
            if index < size and recorded > when + skew:
                problems.append(f"line {number}: recorded after {who} cosigned a checkpoint containing it")
            if index >= size and recorded < when - slack:
                problems.append(f"line {number}: recorded before {who} cosigned a checkpoint without it")
    return problems


def _as_cosigner(log: Key) -> str:
    """The log's own time-signing key: the same key with type 0x04 (section 6)."""
    raw = b"\x04" + log.raw
    key_id = hashlib.sha256(log.name.encode() + b"\n" + raw).digest()[:4]
    return f"{log.name}+{key_id.hex()}+{base64.b64encode(raw).decode()}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("export")
    parser.add_argument("--vkey", required=True)
    parser.add_argument("--checkpoint", action="append", default=[])
    parser.add_argument("--witness", action="append", default=[])
    parser.add_argument("--slack", type=float, default=30)
    parser.add_argument("--skew", type=float, default=5)
    args = parser.parse_args()
    with open(args.export, "rb") as file:
        lines = file.read().split(b"\n")
    notes = []
    for path in args.checkpoint:
        with open(path, encoding="utf-8") as file:
            notes.append(file.read())
    problems = verify(lines, args.vkey, notes, args.witness, args.slack, args.skew)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""`parley audit prove inclusion|consistency`: check a saved proof offline.

Nothing is taken on the server's word but what the public key signed: the roots
come from signed checkpoints (checked with the public key), the leaf from the
event's own hash, and the proof (the JSON of `GET /ledger/proofs/…`) only supplies
the sibling hashes. Both subcommands take their files in the same order:

    parley audit prove inclusion   PROOF --checkpoint C --public-key K --event E
    parley audit prove consistency PROOF --checkpoint C --public-key K --older-checkpoint O
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import Any

import msgspec

from service.audit import merkle
from service.audit.ledger import ConsistencyProof, InclusionProof
from service.audit.signed_note import NoteError, TreeHead


class ProveError(Exception):
    """A file that cannot be used: one line for the user, exit status 2."""


def add_prove_commands(audit_commands: Any) -> None:
    prove = audit_commands.add_parser(
        "prove", help="check a saved inclusion or consistency proof offline against signed checkpoints"
    )
    kinds = prove.add_subparsers(dest="prove_command", required=True)

    def common(parser: argparse.ArgumentParser, proof_help: str) -> None:
        parser.add_argument("proof", help=proof_help)
        parser.add_argument(
            "--checkpoint", required=True, help="the signed checkpoint whose root the proof must reach (the newer one)"
        )
        parser.add_argument(
            "--public-key", required=True, help="the log's public key (JSON of GET /ledger/public-key, vkey or PEM)"
        )

    inclusion = kinds.add_parser("inclusion", help="an event is in the tree of a signed checkpoint")
    common(inclusion, "the JSON of GET /ledger/proofs/inclusion?event_id=…&tree_size=N")
    inclusion.add_argument(
        "--event",
        required=True,
        help="the event: its envelope (an item of GET /events, a line of the export, or the whole page/file)",
    )
    inclusion.set_defaults(run=cmd_prove_inclusion)

    consistency = kinds.add_parser("consistency", help="an older signed checkpoint is a prefix of a newer one")
    common(consistency, "the JSON of GET /ledger/proofs/consistency?first=M&second=N")
    consistency.add_argument("--older-checkpoint", required=True, help="the signed checkpoint of size M")
    consistency.set_defaults(run=cmd_prove_consistency)


def _text(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise ProveError(f"{what} {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ProveError(f"{what} {path}: not text") from None


def _decode(path: str, what: str, kind: type) -> Any:
    try:
        return msgspec.json.decode(_text(path, what), type=kind)
    except msgspec.ValidationError as error:
        raise ProveError(f"{what} {path}: {error}") from None
    except msgspec.DecodeError:
        raise ProveError(f"{what} {path}: not JSON") from None


def _head(path: str, key_text: str, what: str) -> TreeHead:
    from service.audit.offline import verified_head

    try:
        return verified_head(_text(path, what), key_text)
    except NoteError as error:
        raise ProveError(f"{what} {path} refused: {error}") from None


class _EventHash(msgspec.Struct):
    id: uuid.UUID
    hash: str


def _event_hash(path: str, event_id: uuid.UUID) -> bytes:
    """The hash of `event_id` from an envelope, a page of GET /events or NDJSON lines."""
    text = _text(path, "event file")
    candidates: list[Any] = []
    try:
        document = msgspec.json.decode(text)
        candidates = document.get("items", [document]) if isinstance(document, dict) else list(document)
    except msgspec.DecodeError:
        try:
            candidates = [msgspec.json.decode(line) for line in text.splitlines() if line.strip()]
        except msgspec.DecodeError:
            raise ProveError(f"event file {path}: neither JSON nor NDJSON") from None
    for candidate in candidates:
        try:
            event = msgspec.convert(candidate, _EventHash)
        except msgspec.ValidationError:
            continue
        if event.id == event_id:
            try:
                return bytes.fromhex(event.hash)
            except ValueError:
                raise ProveError(f"event file {path}: the hash of event {event_id} is not hex") from None
    raise ProveError(f"event file {path}: no event {event_id} (the proof's event_id) with an id and a hash")


def _run(check: Any) -> int:
    try:
        print(check())
    except ProveError as error:
        print(f"parley audit prove: {error}", file=sys.stderr)
        return 2
    except merkle.ProofError as error:
        print(f"FAILED: {error}")
        return 1
    return 0


def cmd_prove_inclusion(args: argparse.Namespace) -> int:
    def check() -> str:
        proof = _decode(args.proof, "proof", InclusionProof)
        key_text = _text(args.public_key, "public key")
        head = _head(args.checkpoint, key_text, "checkpoint")
        if proof.tree_size != head.tree_size:
            raise merkle.ProofError(
                f"the proof is for tree size {proof.tree_size}, the checkpoint signs size {head.tree_size}: "
                f"fetch the proof with &tree_size={head.tree_size}"
            )
        leaf = merkle.leaf_hash(_event_hash(args.event, proof.event_id))
        merkle.verify_inclusion(proof.leaf_index, head.tree_size, leaf, head.root, proof.proof)
        return (
            f"ok: event {proof.event_id} is leaf {proof.leaf_index} of the tree of size {head.tree_size} "
            f"signed by {head.origin}"
        )

    return _run(check)


def cmd_prove_consistency(args: argparse.Namespace) -> int:
    def check() -> str:
        proof = _decode(args.proof, "proof", ConsistencyProof)
        key_text = _text(args.public_key, "public key")
        new = _head(args.checkpoint, key_text, "checkpoint")
        old = _head(args.older_checkpoint, key_text, "older checkpoint")
        if old.origin != new.origin:
            raise merkle.ProofError(f"the checkpoints are of two logs ({old.origin}, {new.origin})")
        if (proof.first, proof.second) != (old.tree_size, new.tree_size):
            raise merkle.ProofError(
                f"the proof is from size {proof.first} to {proof.second}, the checkpoints sign sizes "
                f"{old.tree_size} and {new.tree_size}: fetch it with ?first={old.tree_size}&second={new.tree_size}"
            )
        merkle.verify_consistency(old.tree_size, new.tree_size, old.root, new.root, proof.proof)
        return (
            f"ok: the tree of size {old.tree_size} is a prefix of the tree of size {new.tree_size}, "
            f"both signed by {new.origin}"
        )

    return _run(check)

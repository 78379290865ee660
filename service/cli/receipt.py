"""`parley audit receipt RECEIPT --public-key KEY [--proof PROOF | --url URL]`:
check a receipt a command response carried (service.audit.receipts), and with
the answer of `POST /ledger/receipts` (saved with --proof, or fetched from --url)
that its event is in the signed tree: the receipt's signature, the checkpoint's
signature, leaf hash = SHA-256(0x00 || the receipt's event hash), the audit path
up to the checkpoint's root. Exit 0 = checked, 1 = a check fails, 2 = a file or
the server cannot be used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import msgspec

from service.audit import merkle
from service.audit.signed_note import NoteError


class _Proof(msgspec.Struct):
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    proof: list[bytes]
    root: bytes
    checkpoint: str


class _Unusable(Exception):
    pass


def add_receipt_command(audit_commands: Any) -> None:
    parser = audit_commands.add_parser(
        "receipt", help="check a receipt from a command response, and its inclusion proof (POST /ledger/receipts)"
    )
    parser.add_argument("receipt", help="the receipt, as the command response's `receipt` (a signed note)")
    parser.add_argument("--public-key", required=True, help="the log's public key (JSON of GET /ledger/public-key, vkey or PEM)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--proof", help="the saved JSON answer of POST /ledger/receipts for this receipt")
    source.add_argument("--url", help="a Parley server to exchange the receipt at, e.g. http://127.0.0.1:8000")
    parser.set_defaults(run=cmd_audit_receipt)


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise _Unusable(f"{what} {path}: {getattr(error, 'strerror', None) or error}") from None


def _exchange(url: str, receipt: str) -> bytes:
    import httpx

    try:
        answer = httpx.post(url.rstrip("/") + "/ledger/receipts", content=receipt.encode(),
                            headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=30)
    except httpx.HTTPError as error:
        raise _Unusable(f"{url}: {error}") from None
    if answer.status_code != 200:
        raise _Unusable(f"the server answered {answer.status_code}: {answer.text[:300]}")
    return answer.content


def cmd_audit_receipt(args: argparse.Namespace) -> int:
    from service.audit.offline import read_verifier
    from service.audit.receipts import open_receipt
    from service.audit.signed_note import open_checkpoint

    try:
        receipt_text = _read(args.receipt, "receipt")
        log = read_verifier(_read(args.public_key, "public key"), receipt_text)
        try:
            receipt = open_receipt(receipt_text, log)
        except NoteError as error:
            print(f"FAILED: the receipt is refused: {error}")
            return 1
        said = (f"event {receipt.event_id} (stream {receipt.stream_id} version {receipt.version}, hash "
                f"{receipt.hash.hex()[:16]}…) recorded at {receipt.recorded_at}, signed by {log.name}")
        if not args.proof and not args.url:
            print(f"ok: receipt for {said}")
            return 0
        raw = _exchange(args.url, receipt_text) if args.url else _read(args.proof, "proof").encode()
        try:
            proof = msgspec.json.decode(raw, type=_Proof)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise _Unusable(f"the proof is not the JSON of POST /ledger/receipts: {error}") from None
    except _Unusable as error:
        print(f"parley audit receipt: {error}", file=sys.stderr)
        return 2
    except NoteError as error:
        print(f"parley audit receipt: public key: {error}", file=sys.stderr)
        return 2
    try:
        head = open_checkpoint(proof.checkpoint, log)
        if (head.tree_size, head.root) != (proof.tree_size, proof.root):
            raise merkle.ProofError("the proof's size and root are not the signed checkpoint's")
        if proof.leaf_hash != merkle.leaf_hash(receipt.hash):
            raise merkle.ProofError("the proof's leaf is not the receipt's event: the log sealed another hash for it")
        merkle.verify_inclusion(proof.leaf_index, head.tree_size, proof.leaf_hash, head.root, proof.proof)
    except (NoteError, merkle.ProofError) as error:
        print(f"FAILED: {error}")
        return 1
    print(f"ok: receipt for {said}; the event is leaf {proof.leaf_index} of the tree of size {head.tree_size} "
          f"signed by {log.name}")
    return 0

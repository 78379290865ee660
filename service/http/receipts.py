"""`POST /ledger/receipts`: a receipt (service.audit.receipts) exchanged for the
event's inclusion proof in the latest signed checkpoint. Public, like every
`/ledger` route: a receipt names an event by its hash, and the answer is hashes.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.di import NamedDependency

from service.audit.ledger import Ledger, LedgerError, trusted_verifier
from service.audit.receipts import open_receipt
from service.audit.signed_note import NoteError
from service.bootstrap import Runtime
from service.http.problems import ProblemError, problem_responses

MAX_RECEIPT_BYTES = 4096


class ReceiptProof(msgspec.Struct, kw_only=True):
    event_id: uuid.UUID
    leaf_index: int
    tree_size: int
    leaf_hash: bytes  # base64: SHA-256(0x00 || the receipt's event hash)
    proof: list[bytes]  # base64 hashes, RFC 9162 §2.1.3 audit path
    root: bytes  # base64, the checkpoint's root
    # The signed checkpoint (C2SP signed note) whose root the proof reaches.
    checkpoint: str


def _invalid(detail: str) -> ProblemError:
    return ProblemError(422, "invalid-receipt", "Not a receipt of this log", detail)


class ReceiptController(Controller):
    path = "/ledger"
    tags = ["ledger"]

    @post(
        "/receipts",
        operation_id="exchangeReceipt",
        status_code=200,
        summary="Exchange a receipt for its event's inclusion proof in the latest checkpoint (public)",
        description="The body is the receipt exactly as a command response carried it (`text/plain`, the signed "
        "note of docs/audit-format.md §7). The answer is checked by the recorder, not trusted: the receipt's "
        "and the checkpoint's signatures with the log's key, `leaf_hash` = SHA-256(0x00 || the receipt's event "
        "hash), and the proof against the checkpoint's root (`parley audit receipt`). 422 `invalid-receipt`: "
        "not a receipt signed by this log's key; 404 `not-sealed`: its event is not in a checkpoint yet (ask "
        "again in a few seconds) — or, for an old receipt, evidence that the log dropped it.",
        responses=problem_responses(404, 413, 422),
    )
    async def exchange(
        self, request: Request[Any, Any, Any], ledger: NamedDependency[Ledger], runtime: NamedDependency[Runtime]
    ) -> ReceiptProof:
        body = await request.body()
        if len(body) > MAX_RECEIPT_BYTES:
            raise ProblemError(413, "payload-too-large", "Receipt too large", f"a receipt is under {MAX_RECEIPT_BYTES} bytes")
        try:
            receipt = open_receipt(body.decode("utf-8"), trusted_verifier(runtime.settings))
        except UnicodeDecodeError:
            raise _invalid("the body is not UTF-8 text") from None
        except NoteError as error:
            raise _invalid(str(error)) from None
        try:
            proof = await ledger.inclusion(receipt.event_id)
        except LedgerError as error:
            raise ProblemError(404, "not-sealed", "Not in the ledger", str(error)) from None
        checkpoint = await ledger.checkpoint(proof.tree_size)
        if checkpoint is None:
            raise ProblemError(404, "not-sealed", "Not in the ledger", f"no checkpoint of size {proof.tree_size}")
        return ReceiptProof(
            event_id=receipt.event_id,
            leaf_index=proof.leaf_index,
            tree_size=proof.tree_size,
            leaf_hash=proof.leaf_hash,
            proof=proof.proof,
            root=proof.root,
            checkpoint=checkpoint.note(),
        )

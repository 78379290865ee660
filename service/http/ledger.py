"""Ledger routes: inclusion and consistency proofs, the public key (no key needed).
The checkpoints and the tiles are service/http/tiles.py.

Binary values (roots, hashes, signatures, proofs) are standard base64, as in the
C2SP checkpoint text; `note` is the signed checkpoint an auditor saves as is.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from service.http.problems import ProblemError, problem_responses
from service.audit.ledger import ConsistencyProof, InclusionProof, Ledger, LedgerError, trusted_verifier
from service.bootstrap import Runtime


class PublicKeyView(msgspec.Struct, kw_only=True):
    algorithm: str  # "Ed25519"
    origin: str
    public_key: bytes  # base64 of the raw 32-byte key
    key_id: str
    vkey: str  # C2SP verifier key: <origin>+<key id>+<base64(0x01 || key)>
    pem: str


TreeSize = Annotated[
    int | None,
    QueryParameter(name="tree_size", required=False, ge=0, description="A published tree size (default: the latest)."),
]


def _not_available(error: LedgerError) -> ProblemError:
    return ProblemError(404, "not-sealed", "Not in the ledger", str(error))


class LedgerController(Controller):
    path = "/ledger"
    tags = ["ledger"]
    # Public, like the tiles they are computed from (service/http/tiles.py): a
    # proof reveals hashes only, and the key is what every verifier needs.

    @get(
        "/proofs/inclusion",
        operation_id="getInclusionProof",
        summary="Proof that an event is leaf `leaf_index` of the tree of `tree_size` (public)",
        description="Verify with RFC 9162 §2.1.3.2: leaf_hash = SHA-256(0x00 || event hash), against the "
        "root of the signed checkpoint of that size.",
        responses=problem_responses(400, 404),
    )
    async def inclusion(
        self,
        ledger: NamedDependency[Ledger],
        event_id: Annotated[uuid.UUID, QueryParameter(name="event_id", description="The event's id.")],
        tree_size: TreeSize = None,
    ) -> InclusionProof:
        try:
            return await ledger.inclusion(event_id, tree_size)
        except LedgerError as error:
            raise _not_available(error) from None

    @get(
        "/proofs/consistency",
        operation_id="getConsistencyProof",
        summary="Proof that the tree of size `first` is a prefix of the tree of size `second` (public)",
        description="Verify with RFC 9162 §2.1.4.2 against the roots of the two signed checkpoints.",
        responses=problem_responses(400, 404),
    )
    async def consistency(
        self,
        ledger: NamedDependency[Ledger],
        first: Annotated[int, QueryParameter(name="first", ge=0, description="The older tree size.")],
        second: Annotated[
            int | None, QueryParameter(name="second", required=False, ge=0, description="The newer (default: latest).")
        ] = None,
    ) -> ConsistencyProof:
        try:
            return await ledger.consistency(first, second)
        except LedgerError as error:
            raise _not_available(error) from None

    @get(
        "/public-key",
        operation_id="getLedgerPublicKey",
        summary="The Ed25519 key that signs the checkpoints (public)",
        description="Fetch it once and keep it: a checkpoint is only as trustworthy as the copy of the key "
        "it is checked with.",
        responses=problem_responses(),
    )
    async def public_key(self, runtime: NamedDependency[Runtime]) -> PublicKeyView:
        # Configuration, never a table row: a checkpoint row inserted by anyone who
        # can write the ledger's tables cannot change the key verifiers are given.
        verifier = trusted_verifier(runtime.settings)
        return PublicKeyView(
            algorithm="Ed25519",
            origin=verifier.name,
            public_key=verifier.public_key,
            key_id=verifier.key_id.hex(),
            vkey=verifier.vkey(),
            pem=verifier.pem(),
        )

"""What `/audit/verify` finds: one Mismatch per problem, and the bounded list of them.

Its own module so that both halves of the verification (service.audit.verify for
the chains and heads, service.audit.seals for the ledger) import it without
importing each other in a circle.
"""

from __future__ import annotations

import uuid

import msgspec


class Mismatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One thing wrong with the record, naming the event (or checkpoint) where it shows."""

    kind: str  # hash_mismatch | body_mismatch | version_gap | out_of_order | head_mismatch |
    #            missing_event | ledger_mismatch | ledger_order | checkpoint_root | checkpoint_key |
    #            checkpoint_signature | checkpoint_beyond_ledger | tile_mismatch | recorded_too_early |
    #            recorded_too_late | cosignature_signature
    detail: str
    event_id: uuid.UUID | None = None
    stream_id: uuid.UUID | None = None
    version: int | None = None
    position: int | None = None
    tree_size: int | None = None  # the checkpoint concerned
    expected_hash: str | None = None  # hex
    stored_hash: str | None = None  # hex


MAX_LISTED = 100


class Findings:
    def __init__(self) -> None:
        self.count = 0
        self.listed: list[Mismatch] = []

    def add(self, problem: Mismatch) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(problem)

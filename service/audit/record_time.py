"""Record time bounded by cosigned checkpoints (docs/audit-format.md §9).

A witness's cosignature says "at time t, I saw the log's tree of size s". For an
event at leaf i whose hashed body says it was recorded at r:

- i < s (the checkpoint contains it): it existed at t, so r must not be later
  than t + skew (`recorded_too_late`);
- i >= s, or not sealed yet (the checkpoint does not contain it): it was
  recorded after t, so r must not be earlier than t - slack
  (`recorded_too_early`): a backdated insert, correctly chained and sealed
  later, shows here even when every chain and root is right.

Only the tightest bounds matter: the latest time among the checkpoints that do
not contain the event and the earliest among those that do, so each event is
checked in O(log c) for c cosigned checkpoints. `slack` covers the honest time
between an insert and the cosignature of the next checkpoint (transaction end,
the next sealing round, the witness's answer: about a second; 30 s by default).

`/audit/verify` (service.audit.verify) runs this over the database with the
configured witnesses' keys (PARLEY_WITNESSES); every stored cosignature is
checked against its checkpoint's body with the witness's key first, and one
that does not verify is reported (`cosignature_signature`) and not used.
"""

from __future__ import annotations

import bisect
import datetime as dt
import uuid
from collections.abc import Iterable, Sequence

import asyncpg
import msgspec

from service.audit.findings import Findings, Mismatch
from service.audit.signed_note import CosignatureVerifier, TreeHead, checkpoint_body
from service.store.event_store import StoredEvent

SLACK = 30.0
SKEW = 5.0
UNSEALED = 1 << 62


class Bound(msgspec.Struct, frozen=True):
    tree_size: int
    timestamp: int  # POSIX seconds, as cosigned
    signer: str


def _instant(seconds: int) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RecordTimeBounds:
    """The record-time rules for a set of cosigned checkpoints (pure)."""

    def __init__(self, bounds: Iterable[Bound], *, slack: float = SLACK, skew: float = SKEW) -> None:
        ordered = sorted(bounds, key=lambda b: (b.tree_size, b.timestamp))
        self.count = len(ordered)
        self.slack, self.skew = slack, skew
        self.sizes = [b.tree_size for b in ordered]
        # latest[k]: the latest cosignature among ordered[:k+1] (sizes <= the event's leaf)
        self.latest: list[Bound] = []
        for b in ordered:
            self.latest.append(b if not self.latest or b.timestamp > self.latest[-1].timestamp else self.latest[-1])
        # earliest[k]: the earliest cosignature among ordered[k:] (sizes above the leaf)
        self.earliest: list[Bound] = list(ordered)
        for k in range(len(ordered) - 2, -1, -1):
            if self.earliest[k + 1].timestamp < self.earliest[k].timestamp:
                self.earliest[k] = self.earliest[k + 1]

    def check(self, leaf_index: int | None, recorded_at: dt.datetime) -> tuple[str, str] | None:
        """(kind, detail) when the event breaks a rule, else None."""
        index = UNSEALED if leaf_index is None else leaf_index
        r = recorded_at.timestamp()
        split = bisect.bisect_right(self.sizes, index)  # ordered[:split] do not contain the event
        if split > 0:
            b = self.latest[split - 1]
            if r < b.timestamp - self.slack:
                return "recorded_too_early", (
                    f"recorded_at {recorded_at.isoformat()} is before {b.signer} cosigned checkpoint {b.tree_size} "
                    f"at {_instant(b.timestamp)}, which does not contain it: a backdated insert"
                )
        if split < len(self.sizes):
            b = self.earliest[split]
            if r > b.timestamp + self.skew:
                return "recorded_too_late", (
                    f"recorded_at {recorded_at.isoformat()} is after {b.signer} cosigned checkpoint {b.tree_size} "
                    f"at {_instant(b.timestamp)}, which contains it"
                )
        return None


class _Recorded(msgspec.Struct):
    recorded_at: str


_COSIGNATURES_SQL = """
    SELECT c.tree_size, c.signer, c.key_id, c.signed_at, c.signature, k.origin, k.root
    FROM ledger_cosignatures c JOIN ledger_checkpoints k USING (tree_size)
    WHERE c.key_id = ANY($1::bytea[])
"""
_LEAVES_SQL = 'SELECT event_id, "index" FROM ledger_leaves WHERE event_id = ANY($1::uuid[])'


class RecordTimeCheck:
    """The rules over the database: the stored cosignatures by trusted witnesses,
    then every event (a page at a time, as verify_store reads them)."""

    def __init__(self, pool: asyncpg.Pool, bounds: RecordTimeBounds) -> None:
        self.pool, self.bounds = pool, bounds

    @classmethod
    async def load(
        cls,
        pool: asyncpg.Pool,
        witnesses: Sequence[CosignatureVerifier],
        findings: Findings,
        *,
        slack: float = SLACK,
        skew: float = SKEW,
    ) -> "RecordTimeCheck":
        known = {(w.name, w.key_id): w for w in witnesses}
        bounds = []
        for row in await pool.fetch(_COSIGNATURES_SQL, [w.key_id for w in witnesses]):
            witness = known.get((row["signer"], row["key_id"]))
            if witness is None:
                continue
            body = checkpoint_body(TreeHead(origin=row["origin"], tree_size=row["tree_size"], root=row["root"]))
            stamp = int.from_bytes(row["signature"][:8], "big")
            if not witness.verify(body, row["signature"]) or stamp != row["signed_at"]:
                findings.add(
                    Mismatch(
                        kind="cosignature_signature",
                        detail=f"the stored cosignature by {row['signer']} of checkpoint {row['tree_size']} "
                        "does not verify with that witness's configured key",
                        tree_size=row["tree_size"],
                    )
                )
                continue
            bounds.append(Bound(row["tree_size"], stamp, row["signer"]))
        return cls(pool, RecordTimeBounds(bounds, slack=slack, skew=skew))

    async def check_page(self, page: Sequence[StoredEvent], findings: Findings) -> None:
        if not self.bounds.count or not page:
            return
        leaves: dict[uuid.UUID, int] = {
            r["event_id"]: r["index"] for r in await self.pool.fetch(_LEAVES_SQL, [e.id for e in page])
        }
        for event in page:
            try:  # the hashed time; an unreadable body is reported by the chain check
                recorded = dt.datetime.fromisoformat(msgspec.json.decode(event.body, type=_Recorded).recorded_at)
            except (msgspec.DecodeError, ValueError):
                continue
            broken = self.bounds.check(leaves.get(event.id), recorded)
            if broken is not None:
                kind, detail = broken
                findings.add(
                    Mismatch(
                        kind=kind, detail=detail, event_id=event.id, stream_id=event.stream_id,
                        version=event.version, position=event.position,
                    )
                )

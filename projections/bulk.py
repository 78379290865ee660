"""A rebuild's fold: the projections' rows folded in memory in one pass over the
log, handed out as rows for bulk writes (service.projection.rebuild COPYs them).

The live projections write every stream they touch in every batch: a stream's
row is rewritten once per batch it appears in, its summary recomputed from the
issue rows read back, its snapshot rows upserted. A rebuild only needs the
final rows. Here each negotiation's streams are folded in memory (one fold per
issue stream, shared by `issue_status` and `negotiation_summary`: both are the
domain's `IssueFold`, the history fold one that also keeps the snapshots), and
a negotiation's rows are handed out once, when it is evicted or at the end:
the issue rows, the snapshot rows and heads, the summary's issue briefs and
row, the timeline's party names. Timeline rows (one per event, never changed)
are handed out as they are folded.

The rows are the live projection's own (the same `status_row`, `issue_row`,
`negotiation_row`, `rows_to_write`, timeline `row`), from the same folds at the
stream's newest version, which is what the live projection's last write of
each row holds.

Memory is bounded by negotiation: past `capacity` events held, the negotiations
least recently seen (not in the current batch) are evicted. A negotiation once
evicted is never held again (`holds` is false for it): its later facts go
through the projections' ordinary `apply`, which continues from the rows
written, as the live runner continues from its checkpoint. Negotiations are
independent in every projection (a row depends on its stream, or on its
negotiation's streams), so splitting the log by negotiation changes nothing.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from domain.status import IssueFold, NegotiationFold
from projections import issue_snapshots, issue_status, negotiation_summary, timeline
from projections.folds import FoldCache
from projections.issue_snapshots import IssueHistoryFold
from projections.records import Fact, StreamHistory, by_stream

# table -> its columns, in the order of the rows handed out for it.
COLUMNS: dict[str, tuple[str, ...]] = {
    "issue_status": issue_status.COLUMNS,
    "issue_snapshots": issue_snapshots.ROW_COLUMNS,
    "issue_snapshot_heads": issue_snapshots.HEAD_COLUMNS,
    "negotiation_summary_issues": negotiation_summary.ISSUE_COLUMNS,
    "negotiation_summary": negotiation_summary.NEGOTIATION_COLUMNS,
    "timeline_parties": timeline.PARTY_COLUMNS,
    "timeline": timeline.COLUMNS,
}
# The projections folded here (by name), and the tables each writes.
TABLES: dict[str, tuple[str, ...]] = {
    issue_status.IssueStatusProjection.name: issue_status.IssueStatusProjection.tables,
    negotiation_summary.NegotiationSummaryProjection.name: negotiation_summary.NegotiationSummaryProjection.tables,
    timeline.TimelineProjection.name: timeline.TimelineProjection.tables,
}

Rows = dict[str, list[tuple]]


@dataclass
class _Held:
    """One negotiation held in memory."""

    # Version folded so far of each of its streams (the negotiation's own and its issues').
    versions: dict[uuid.UUID, int] = field(default_factory=dict)
    # Party names known so far (the timeline's sentences use them).
    parties: dict[str, str] = field(default_factory=dict)
    last_batch: int = 0


class BulkFold:
    def __init__(self, names: Iterable[str], capacity: int = 50_000) -> None:
        self.names = set(names)
        unknown = self.names - set(TABLES)
        if unknown:
            raise ValueError(f"no bulk fold for {sorted(unknown)}")
        self.statuses = issue_status.IssueStatusProjection.name in self.names
        self.summaries = negotiation_summary.NegotiationSummaryProjection.name in self.names
        self.timeline = timeline.TimelineProjection() if timeline.TimelineProjection.name in self.names else None
        self.capacity = capacity
        # Eviction is by negotiation (`_evict`), not by the caches' own bound.
        self.issues: FoldCache[IssueFold] = FoldCache(IssueHistoryFold if self.statuses else IssueFold, sys.maxsize)
        self.negotiations: FoldCache[NegotiationFold] = FoldCache(NegotiationFold, sys.maxsize)
        self.held: dict[uuid.UUID, _Held] = {}
        self.evicted: set[uuid.UUID] = set()
        self.events_held = 0
        self.batches = 0

    def holds(self, fact: Fact) -> bool:
        """Whether this fold takes the fact (false once its negotiation was evicted)."""
        return fact.negotiation_id not in self.evicted

    async def add(self, facts: Sequence[Fact], history: StreamHistory) -> Rows:
        """Fold a batch of the log (facts `holds` takes, in commit order); the rows
        ready now: the batch's timeline rows and the rows of negotiations evicted."""
        self.batches += 1
        rows: Rows = {}
        for fact in facts:
            self._negotiation(fact.negotiation_id)
        if self.statuses or self.summaries:
            for stream_id, group in by_stream(facts).items():
                stream_type = group[0].record.stream_type
                if stream_type == "issue":
                    cache: FoldCache = self.issues
                elif stream_type == "negotiation" and self.summaries:
                    cache = self.negotiations
                else:
                    continue
                held = self.held[group[0].negotiation_id]
                before = held.versions.get(stream_id, 0)
                folded = await cache.advance(stream_id, before, [f.record for f in group], history)
                if folded is not None:
                    held.versions[stream_id] = folded.version
                    self.events_held += folded.version - before
        if self.timeline is not None:
            lines = rows.setdefault("timeline", [])
            for fact in facts:  # in log order: the names known at each point of the log
                known = self.held[fact.negotiation_id].parties
                for party in timeline.introduced(fact.record):
                    known[party.code] = party.name
                lines.append(await self.timeline.row(fact, known, history))
        await self._evict(rows, history)
        return rows

    async def finish(self, history: StreamHistory) -> Rows:
        """The rows of every negotiation still held (each then counts as evicted)."""
        rows: Rows = {}
        for negotiation_id in list(self.held):
            await self._emit(negotiation_id, rows, history)
        return rows

    def _negotiation(self, negotiation_id: uuid.UUID) -> _Held:
        held = self.held.get(negotiation_id)
        if held is None:
            held = self.held[negotiation_id] = _Held()
        held.last_batch = self.batches
        return held

    async def _evict(self, rows: Rows, history: StreamHistory) -> None:
        if self.events_held <= self.capacity:
            return
        # Least recently seen first; never one this batch touched (a negotiation
        # larger than the capacity is held whole, as the live caches hold a stream).
        for negotiation_id in sorted(self.held, key=lambda n: self.held[n].last_batch):
            if self.events_held <= self.capacity or self.held[negotiation_id].last_batch == self.batches:
                return
            await self._emit(negotiation_id, rows, history)

    async def _emit(self, negotiation_id: uuid.UUID, rows: Rows, history: StreamHistory) -> None:
        held = self.held.pop(negotiation_id)
        self.evicted.add(negotiation_id)
        briefs = []
        for stream_id, version in held.versions.items():
            self.events_held -= version
            if stream_id == negotiation_id:
                continue  # the negotiation's own stream: summarised below, from its issues' briefs
            folded = await self.issues.at(stream_id, version, history)
            self.issues.forget(stream_id)
            if folded is None:
                continue
            if self.statuses:
                rows.setdefault("issue_status", []).append(
                    issue_status.copy_row(issue_status.status_row(stream_id, negotiation_id, folded))
                )
                snapshots, heads, _ = issue_snapshots.rows_to_write([(stream_id, version, folded.fold)], {})
                rows.setdefault("issue_snapshots", []).extend(snapshots)
                rows.setdefault("issue_snapshot_heads", []).extend(heads)
            if self.summaries:
                brief = negotiation_summary.issue_row(stream_id, negotiation_id, folded.fold)
                rows.setdefault("negotiation_summary_issues", []).append(brief)
                # Decoded from its bytes, as the live projection reads it back.
                briefs.append(negotiation_summary.stored_brief(brief[-1]))
        if self.summaries:
            version = held.versions.get(negotiation_id, 0)
            folded_negotiation = await self.negotiations.at(negotiation_id, version, history)
            self.negotiations.forget(negotiation_id)
            summary = negotiation_summary.negotiation_row(negotiation_id, folded_negotiation, briefs)
            if summary is not None:
                rows.setdefault("negotiation_summary", []).append(summary)
        if self.timeline is not None:
            rows.setdefault("timeline_parties", []).extend(
                (negotiation_id, code, name) for code, name in held.parties.items()
            )

"""Offline replay of an NDJSON export, with no database: `parley audit replay FILE`.

Every view a client reads — each negotiation's summary, its issues' views and
its timeline — recomputed from the export's hashed bodies alone (no served field
beside the body is trusted; only the line's place in the log orders the
events), now or over any bitemporal window (`as_of`, `known_at`), with the same
pure code the server's time-travel reads use (service.read.windows), so the
replay equals what the server serves (tests/integration/audit/test_replay_views.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import msgspec

from service.store.canonical import canonical_decoder
from service.store.envelope import ExportedEvent

_exported = msgspec.json.Decoder(ExportedEvent)


class ReplayedIssue(msgspec.Struct, kw_only=True):
    negotiation_id: uuid.UUID
    key: str
    view: Any  # domain.status.IssueView


def _as_stored(event: ExportedEvent) -> Any:
    """The event as the fold sees it, from its hashed body alone: no served field
    beside the body is trusted (a changed `type` with the body untouched changes
    nothing). Only the place in the log (position, checkpoint) comes from the line;
    it orders, and the verifier checks it against the tree. None: not an event."""
    import datetime as dt

    from service.store.event_store import StoredEvent

    body = event.body.encode()
    try:
        hashed = canonical_decoder.decode(body)
        recorded_at = dt.datetime.fromisoformat(hashed.recorded_at.replace("Z", "+00:00"))
    except (msgspec.DecodeError, ValueError):
        return None
    txid, _, _position = event.checkpoint.partition(".")
    return StoredEvent(
        position=event.position,
        txid=int(txid) if txid.isdigit() else 0,
        id=hashed.id,
        stream_id=hashed.stream_id,
        stream_type=hashed.stream_type,
        negotiation_id=hashed.negotiation_id,
        version=hashed.version,
        type=hashed.type,
        schema_version=hashed.schema_version,
        body=body,
        data=bytes(hashed.data),
        occurred_on=hashed.occurred_on,
        recorded_at=recorded_at,
        recorded_by=hashed.recorded_by,
        claimed_by=tuple(hashed.claimed_by),
        source=hashed.source,
        note=hashed.note,
        correlation_id=hashed.correlation_id,
        causation_id=hashed.causation_id,
        hash=bytes.fromhex(event.hash),
        import_claim=hashed.import_claim,
    )


class ReplayedNegotiation(msgspec.Struct, kw_only=True):
    """Every view of one negotiation, as the server serves it at the same window:
    `GET /negotiations/{id}`, every item of `…/issues` and of `…/timeline`."""

    negotiation_id: uuid.UUID
    negotiation: Any  # projections.negotiation_summary.NegotiationSummary
    issues: list[Any]  # domain.status.IssueView, by key
    timeline: list[Any]  # projections.timeline.TimelineEntry, in the timeline's order


def _streams(lines: Iterable[bytes]) -> dict[uuid.UUID, dict[uuid.UUID, list[Any]]]:
    """Each negotiation's streams' records, from the hashed bodies, in version order."""
    from projections.records import recorded_from_stored

    negotiations: dict[uuid.UUID, dict[uuid.UUID, list[Any]]] = {}
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            event = _exported.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as error:
            raise ValueError(f"line {number}: not an exported event: {error}") from None
        stored = _as_stored(event)
        if stored is None:
            continue  # (an unreadable body: `parley audit verify` names it)
        negotiation_id = stored.negotiation_id or stored.stream_id
        streams = negotiations.setdefault(negotiation_id, {})
        streams.setdefault(stored.stream_id, []).append(recorded_from_stored(stored))
    for streams in negotiations.values():
        for records in streams.values():
            records.sort(key=lambda record: record.version)  # folds want stream order
    return negotiations


def replay_views(
    lines: Iterable[bytes], *, as_of: str | None = None, known_at: str | None = None
) -> list[ReplayedNegotiation]:
    """Every negotiation's views over the window (`as_of`, `known_at` as the API
    takes them; neither: now), by negotiation id; a negotiation not yet opened in
    the window is left out, as the API answers 404 for it. ValueError for a line
    that is no exported event or a time that does not parse."""
    from service.read import windows

    travel = windows.TimeTravel.parse(as_of, known_at)
    replayed = []
    for negotiation_id, streams in _streams(lines).items():
        negotiation = streams.pop(negotiation_id, [])
        issues = sorted(streams.values(), key=lambda records: getattr(records[0].data, "issue", ""))
        summary = windows.negotiation_summary(negotiation, issues, travel)
        if summary is None:
            continue
        views = sorted(windows.issue_views(issues, travel), key=lambda view: view.key)
        timeline = windows.timeline(negotiation_id, negotiation, issues, travel)
        replayed.append(
            ReplayedNegotiation(negotiation_id=negotiation_id, negotiation=summary[0], issues=views, timeline=timeline)
        )
    replayed.sort(key=lambda n: str(n.negotiation_id))
    return replayed


def replay_export(lines: Iterable[bytes]) -> list[ReplayedIssue]:
    """Every issue's current status (the views of `replay_views` now), sorted by
    negotiation and key."""
    return [
        ReplayedIssue(negotiation_id=n.negotiation_id, key=view.key, view=view)
        for n in replay_views(lines)
        for view in n.issues
    ]


def differences(replayed: Any, served: Any, path: str = "") -> list[str]:
    """Where a served JSON value differs from the replayed one, as JSON pointers.
    Members the server adds beyond the domain's view are not compared."""
    if isinstance(replayed, dict) and isinstance(served, dict):
        found = []
        for name, value in replayed.items():
            if name not in served:
                found.append(f"{path}/{name}: missing from the server")
            else:
                found.extend(differences(value, served[name], f"{path}/{name}"))
        return found
    if isinstance(replayed, list) and isinstance(served, list) and len(replayed) == len(served):
        found = []
        for index, (mine, theirs) in enumerate(zip(replayed, served)):
            found.extend(differences(mine, theirs, f"{path}/{index}"))
        return found
    if replayed != served:
        return [f"{path or '/'}: replayed {msgspec.json.encode(replayed).decode()[:200]}, "
                f"served {msgspec.json.encode(served).decode()[:200]}"]
    return []

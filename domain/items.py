"""Ceasefires and humanitarian corridors: items on an issue with a life cycle.

Only ``*.proposed``, ``*.agreed`` and ``ceasefire.declared`` (v2: a
unilateral ceasefire, by one party) introduce an item (an item may be agreed
without having been proposed). Every other step needs a known item in a state
it can follow, per the tables below.
"""

from __future__ import annotations

from typing import Any

from domain import commands as c
from domain import errors
from domain import events as e
from domain.context import Context, check_range, rule, when
from domain.views import ItemView

# step -> states it may follow
CEASEFIRE_STEPS: dict[str, frozenset[str]] = {
    # A unilateral (declared) ceasefire may become an agreed one.
    "agreed": frozenset({"proposed", "rejected", "declared"}),
    "rejected": frozenset({"proposed"}),
    "violated": frozenset({"agreed", "declared", "violated"}),
    "ended": frozenset({"proposed", "declared", "agreed", "violated"}),
}
CORRIDOR_STEPS: dict[str, frozenset[str]] = {
    "agreed": frozenset({"proposed", "rejected"}),
    "rejected": frozenset({"proposed"}),
    # A corridor may open de facto before any recorded agreement, or reopen
    # after a violation.
    "opened": frozenset({"proposed", "agreed", "violated"}),
    "violated": frozenset({"agreed", "opened", "violated"}),
    "closed": frozenset({"proposed", "agreed", "opened", "violated"}),
}
STEPS = {"ceasefire": CEASEFIRE_STEPS, "corridor": CORRIDOR_STEPS}


def _new_item_id(kind: str, given: str | None, ctx: Context) -> str:
    field = f"{kind}_id"
    item_id = ctx.new_id(given, f"/{field}")
    if item_id in ctx.on_issue.item_ids():
        raise errors.ItemIdReused(f"{item_id!r} is already used on issue {ctx.on_issue.key!r}", f"/{field}")
    return item_id


def _step(kind: str, step: str, item_id: str, ctx: Context) -> ItemView:
    pointer = f"/{kind}_id"
    item = ctx.on_issue.items.get(item_id)
    if item is None or item.kind != kind:
        raise errors.UnknownItem(f"{kind} {item_id!r} does not exist on issue {ctx.on_issue.key!r}", pointer)
    if item.state not in STEPS[kind][step]:
        raise errors.InvalidTransition(f"{kind} {item_id!r} is {item.state}; it cannot be {step}", pointer)
    return item


def _reject_own(item: ItemView, by: str) -> None:
    if item.by == by:
        raise errors.OwnProposal(f"{by} proposed {item.kind} {item.id!r}; it cannot reject its own proposal", "/by")


def _times(cmd: Any, item: ItemView | None) -> tuple[str | None, str | None]:
    starts_at, ends_at = when(cmd.starts_at, "/starts_at"), when(cmd.ends_at, "/ends_at")
    check_range(starts_at or (item.starts_at if item else None), ends_at or (item.ends_at if item else None))
    return starts_at, ends_at


# --- ceasefires ----------------------------------------------------------------


@rule(c.ProposeCeasefire)
def ceasefire_proposed(cmd: c.ProposeCeasefire, ctx: Context) -> e.CeasefireProposed:
    item_id = _new_item_id("ceasefire", cmd.ceasefire_id, ctx)
    ctx.require_party(cmd.by, "/by")
    starts_at, ends_at = _times(cmd, None)
    return e.CeasefireProposed(
        issue=cmd.issue, ceasefire_id=item_id, by=cmd.by, scope=cmd.scope, area=cmd.area,
        starts_at=starts_at, ends_at=ends_at, summary=cmd.summary,
    )


@rule(c.DeclareCeasefire)
def ceasefire_declared(cmd: c.DeclareCeasefire, ctx: Context) -> e.CeasefireDeclared:
    item_id = _new_item_id("ceasefire", cmd.ceasefire_id, ctx)
    ctx.require_party(cmd.by, "/by")
    starts_at, ends_at = _times(cmd, None)
    return e.CeasefireDeclared(
        issue=cmd.issue, ceasefire_id=item_id, by=cmd.by, scope=cmd.scope, area=cmd.area,
        starts_at=starts_at, ends_at=ends_at, summary=cmd.summary,
    )


@rule(c.AgreeCeasefire)
def ceasefire_agreed(cmd: c.AgreeCeasefire, ctx: Context) -> e.CeasefireAgreed:
    item = ctx.on_issue.items.get(cmd.ceasefire_id) if cmd.ceasefire_id else None
    if item is None:
        item_id = _new_item_id("ceasefire", cmd.ceasefire_id, ctx)
        if cmd.scope is None:
            raise errors.MissingDetail("scope is required when agreeing a ceasefire not proposed before", "/scope")
    else:
        item_id = _step("ceasefire", "agreed", item.id, ctx).id
    ctx.require_parties(cmd.parties, "/parties")
    starts_at, ends_at = _times(cmd, item)
    return e.CeasefireAgreed(
        issue=cmd.issue, ceasefire_id=item_id, parties=list(cmd.parties), scope=cmd.scope, area=cmd.area,
        starts_at=starts_at, ends_at=ends_at, summary=cmd.summary,
    )


@rule(c.RejectCeasefire)
def ceasefire_rejected(cmd: c.RejectCeasefire, ctx: Context) -> e.CeasefireRejected:
    item = _step("ceasefire", "rejected", cmd.ceasefire_id, ctx)
    ctx.require_party(cmd.by, "/by")
    _reject_own(item, cmd.by)
    return e.CeasefireRejected(issue=cmd.issue, ceasefire_id=cmd.ceasefire_id, by=cmd.by, reason=cmd.reason)


@rule(c.ReportCeasefireViolation)
def ceasefire_violated(cmd: c.ReportCeasefireViolation, ctx: Context) -> e.CeasefireViolated:
    _step("ceasefire", "violated", cmd.ceasefire_id, ctx)
    ctx.require_party(cmd.alleged_by, "/alleged_by")
    ctx.require_parties(cmd.against, "/against")
    return e.CeasefireViolated(
        issue=cmd.issue, ceasefire_id=cmd.ceasefire_id, alleged_by=cmd.alleged_by,
        against=list(cmd.against), summary=cmd.summary,
    )


@rule(c.EndCeasefire)
def ceasefire_ended(cmd: c.EndCeasefire, ctx: Context) -> e.CeasefireEnded:
    _step("ceasefire", "ended", cmd.ceasefire_id, ctx)
    return e.CeasefireEnded(issue=cmd.issue, ceasefire_id=cmd.ceasefire_id, reason=cmd.reason, summary=cmd.summary)


# --- corridors ---------------------------------------------------------------------


@rule(c.ProposeCorridor)
def corridor_proposed(cmd: c.ProposeCorridor, ctx: Context) -> e.CorridorProposed:
    item_id = _new_item_id("corridor", cmd.corridor_id, ctx)
    ctx.require_party(cmd.by, "/by")
    return e.CorridorProposed(
        issue=cmd.issue, corridor_id=item_id, by=cmd.by, from_=cmd.from_, to=cmd.to, via=cmd.via,
        window=cmd.window, purpose=cmd.purpose, summary=cmd.summary,
    )


@rule(c.AgreeCorridor)
def corridor_agreed(cmd: c.AgreeCorridor, ctx: Context) -> e.CorridorAgreed:
    item = ctx.on_issue.items.get(cmd.corridor_id) if cmd.corridor_id else None
    if item is None:
        item_id = _new_item_id("corridor", cmd.corridor_id, ctx)
        if cmd.from_ is None:
            raise errors.MissingDetail("from is required when agreeing a corridor not proposed before", "/from")
        if cmd.to is None:
            raise errors.MissingDetail("to is required when agreeing a corridor not proposed before", "/to")
    else:
        item_id = _step("corridor", "agreed", item.id, ctx).id
    ctx.require_parties(cmd.parties, "/parties")
    return e.CorridorAgreed(
        issue=cmd.issue, corridor_id=item_id, parties=list(cmd.parties), from_=cmd.from_, to=cmd.to,
        via=cmd.via, window=cmd.window, purpose=cmd.purpose, summary=cmd.summary,
    )


@rule(c.RejectCorridor)
def corridor_rejected(cmd: c.RejectCorridor, ctx: Context) -> e.CorridorRejected:
    item = _step("corridor", "rejected", cmd.corridor_id, ctx)
    ctx.require_party(cmd.by, "/by")
    _reject_own(item, cmd.by)
    return e.CorridorRejected(issue=cmd.issue, corridor_id=cmd.corridor_id, by=cmd.by, reason=cmd.reason)


@rule(c.OpenCorridor)
def corridor_opened(cmd: c.OpenCorridor, ctx: Context) -> e.CorridorOpened:
    _step("corridor", "opened", cmd.corridor_id, ctx)
    return e.CorridorOpened(issue=cmd.issue, corridor_id=cmd.corridor_id, summary=cmd.summary)


@rule(c.ReportCorridorViolation)
def corridor_violated(cmd: c.ReportCorridorViolation, ctx: Context) -> e.CorridorViolated:
    _step("corridor", "violated", cmd.corridor_id, ctx)
    ctx.require_party(cmd.alleged_by, "/alleged_by")
    ctx.require_parties(cmd.against, "/against")
    return e.CorridorViolated(
        issue=cmd.issue, corridor_id=cmd.corridor_id, alleged_by=cmd.alleged_by,
        against=list(cmd.against), summary=cmd.summary,
    )


@rule(c.CloseCorridor)
def corridor_closed(cmd: c.CloseCorridor, ctx: Context) -> e.CorridorClosed:
    _step("corridor", "closed", cmd.corridor_id, ctx)
    return e.CorridorClosed(issue=cmd.issue, corridor_id=cmd.corridor_id, reason=cmd.reason)

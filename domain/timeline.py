"""One human-readable sentence per recorded fact, for the timeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from domain.records import Recorded


def _quote(text: str | None, limit: int = 160) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return "'" + (text if len(text) <= limit else text[: limit - 1] + "…") + "'"


def _list(codes: Any, name: Callable[[str], str]) -> str:
    names = [name(c) for c in codes or ()]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def article(word: str) -> str:
    """"a" or "an" before a word as it is read aloud ("an issue.raised event", "a host")."""
    lowered = word.lower()
    if lowered.startswith(("uni", "use", "usu", "eu")):
        return "a"
    return "an" if lowered[:1] in ("a", "e", "i", "o", "u") or lowered.startswith("hon") else "a"


def _first_upper(text: str) -> str:
    # str.capitalize() would lower-case place names.
    return text[:1].upper() + text[1:]


def describe(record: Recorded, names: Mapping[str, str] | None = None) -> str:
    """E.g. "RU proposed 'no weapons threatening Russia' on neutral-status to UA".

    ``names`` maps party codes to display names ("RU" -> "Russia"); codes are
    used where it has none.
    """
    names = names or {}

    def n(code: str | None) -> str:
        return names.get(code, code) if code else "someone"

    d: Any = record.data
    t = record.type
    on = f" on {d.issue}" if getattr(d, "issue", None) else ""
    claim = f" (according to {_list(record.claimed_by, n)})" if record.claimed_by else ""
    kind = t.split(".")[0]

    if t == "negotiation.opened":
        text = f"Negotiation {_quote(d.title)} opened between {_list([p.code for p in d.parties], n)}"
        if d.mediators:
            text += f", mediated by {_list([p.code for p in d.mediators], n)}"
    elif t == "party.joined":
        text = f"{names.get(d.party.code, d.party.name)} joined as {article(d.role)} {d.role}"
    elif t == "party.left":
        text = f"{n(d.party)} left the negotiation"
    elif kind == "round":
        step = t.split(".")[1]
        where = ", ".join(x for x in (d.venue, d.country) if x) if step != "cancelled" else ""
        level = f"{d.level} " if step != "cancelled" and d.level else ""
        text = f"Round {d.round_id} ({level}talks{' in ' + where if where else ''}) {step}"
        if step != "cancelled" and d.ends_on:
            text += f" until {d.ends_on}"
        if step != "cancelled" and d.participants:
            text += f" with {_list(d.participants, n)}"
        if step != "cancelled" and d.summary:
            text += f": {_quote(d.summary)}"
    elif t == "negotiation.suspended":
        text = "Negotiation suspended" + (f": {_quote(d.reason)}" if d.reason else "")
    elif t == "negotiation.resumed":
        text = "Negotiation resumed"
    elif t == "negotiation.concluded":
        text = "Negotiation concluded" + (f": {_quote(d.outcome)}" if d.outcome else "")
    elif t == "negotiation.reopened":
        text = "Negotiation reopened" + (f": {_quote(d.reason)}" if d.reason else "")
    elif t == "statement.made":
        who = d.speaker + (f" ({n(d.party)})" if d.party else "")
        text = f"{who} said {_quote(d.summary)}{on}"
        if d.assessment:
            text += f" ({d.assessment})"
    elif t == "record.retracted":
        text = f"Record {d.event_id} retracted: {_quote(d.reason)}"
    elif t == "claim.disputed":
        text = f"{n(d.by)} disputed record {d.event_id}: {_quote(d.summary)}"
    elif t == "issue.raised":
        text = f"Issue {d.issue} ({_quote(d.title)}, {d.category}) raised" + (f" by {n(d.raised_by)}" if d.raised_by else "")
    elif t == "issues.linked":
        text = f"Issue {d.issue} linked to {d.related_issue} ({d.relation.replace('_', ' ')})"
    elif t == "issue.discussed":
        text = f"{d.issue} discussed" + (f" at round {d.round_id}" if d.round_id else "")
        if d.summary:
            text += f": {_quote(d.summary)}"
    elif t == "position.stated":
        text = f"{n(d.party)} {d.stance.replace('_', ' ')} {_quote(d.summary)}{on}"
    elif t in ("proposal.made", "proposal.countered"):
        verb = "proposed" if t == "proposal.made" else f"countered {d.counters} with"
        text = f"{n(d.by)} {verb} {_quote(d.summary)}{on}"
        if d.to:
            text += f" to {_list(d.to, n)}"
    elif kind == "proposal":
        text = f"{n(d.by)} {t.split('.')[1]} proposal {d.proposal_id}{on}"
    elif t == "agreement.reached":
        what = "an agreement in principle" if d.level == "in_principle" else "a final agreement"
        on = f" on {_list(d.issues, str)}" if d.issues else on
        text = f"{_list(d.parties, n)} reached {what} {_quote(d.summary)}{on}"
    elif t == "agreement.signed":
        text = f"{_list(d.parties, n)} signed agreement {d.agreement_id}{on}" + (f" in {d.venue}" if d.venue else "")
    elif t in ("agreement.ratified", "agreement.rejected"):
        verb = t.split(".")[1]
        how = f" through {d.body}" if d.body else f" by {d.method}"
        text = f"{n(d.by)} {verb} agreement {d.agreement_id}{on}{how}"
        if d.result is not None:
            figures = [f"{value:g}% {name}" for name, value in (("yes", d.result.yes), ("no", d.result.no)) if value is not None]
            if d.result.turnout is not None:
                figures.append(f"turnout {d.result.turnout:g}%")
            if figures:
                text += f" ({', '.join(figures)})"
    elif t == "agreement.implemented":
        extent = "" if d.extent == "full" else f" ({d.extent} extent)"
        text = f"Agreement {d.agreement_id}{on} implemented" + (" in full" if d.extent == "full" else extent)
    elif t == "agreement.withdrawn":
        text = f"{n(d.by)} withdrew from agreement {d.agreement_id}{on}" + (f": {_quote(d.reason)}" if d.reason else "")
    elif t == "agreement.superseded":
        text = f"Agreement {d.agreement_id}{on} superseded by agreement {d.by_agreement}"
    elif t == "agreement.violated":
        text = f"{n(d.alleged_by)} reported a violation of agreement {d.agreement_id}{on}"
        if d.against:
            text += f" by {_list(d.against, n)}"
    elif t in ("issue.dropped", "issue.reopened"):
        text = f"Issue {d.issue} {t.split('.')[1]}" + (f": {_quote(d.reason)}" if d.reason else "")
    elif kind in ("ceasefire", "corridor"):
        step = t.split(".")[1]
        item_id = getattr(d, f"{kind}_id")
        what = f"{kind} {item_id}"
        if kind == "corridor" and getattr(d, "from_", None):
            what += f" from {d.from_} to {d.to}"
        elif kind == "ceasefire" and getattr(d, "area", None):
            what += f" in {d.area}"
        if step in ("proposed", "rejected"):
            text = f"{n(d.by)} {step} {what}"
        elif step == "declared":
            text = f"{n(d.by)} declared a unilateral {what}"
        elif step == "agreed":
            text = f"{_first_upper(what)} agreed" + (f" by {_list(d.parties, n)}" if d.parties else "")
        elif step == "violated":
            text = f"{n(d.alleged_by)} reported a violation of {what}"
            if d.against:
                text += f" by {_list(d.against, n)}"
        elif step == "ended":
            text = f"{_first_upper(what)} ended ({d.reason})"
        else:
            text = f"{_first_upper(what)} {step}"
    else:
        text = f"{t} recorded"
    return text + claim

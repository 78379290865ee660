"""Time travel without leaks: for random valid histories (v1 and v2 facts), every
field of an ``as_of`` / ``known_at`` view equals a plain reference fold of
exactly the facts in the window -- counts, version, last activity, lineage,
disputes -- and nothing in it names or dates a fact outside the window."""

import datetime as dt

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import given as hgiven
from hypothesis import strategies as st

from domain import world_time
from domain.errors import DomainError
from domain.records import Recorded
from domain.status import IssueView, fold_issue, fold_negotiation, lineage, select_known
from tests.unit.gwt import World, cmd
from tests.unit.test_properties import RAISE_X, commands

DAYS = ["2022-03-01", "2022-03-05", "2022-03-07", "2022-03-09", "2022-03-12"]
V2 = [
    lambda d, i, p: cmd("agreement.reached", d, issues=["x", "ceasefire"], agreement_id=f"m{i}", level="final",
                        parties=["RU", "UA"], summary="s"),
    lambda d, i, p: cmd("agreement.signed", d, agreement_id=f"m{i}", parties=[p]),
    lambda d, i, p: cmd("agreement.ratified", d, agreement_id=f"m{i}", by=p, method="legislature"),
    lambda d, i, p: cmd("agreement.rejected", d, agreement_id=f"m{i}", by=p, method="referendum"),
    lambda d, i, p: cmd("agreement.implemented", d, agreement_id=f"m{i}", extent="minimal"),
    lambda d, i, p: cmd("agreement.withdrawn", d, agreement_id=f"m{i}", by=p),
    lambda d, i, p: cmd("agreement.superseded", d, agreement_id=f"m{i}", by_agreement=f"m{1 - i}"),
    lambda d, i, p: cmd("ceasefire.declared", d, ceasefire_id=f"d{i}", by=p, scope="general"),
    lambda d, i, p: cmd("negotiation.concluded", d),
    lambda d, i, p: cmd("negotiation.reopened", d),
]


def reference_window(records: list[Recorded], as_of, known_at) -> list[Recorded]:
    """The window, written plainly: facts that had occurred by as_of and were
    recorded by known_at; a correction when recorded by known_at and its target
    is in the window."""
    window: list[Recorded] = []
    for r in records:
        if known_at is not None and r.recorded_at > known_at:
            continue
        if r.type in ("record.retracted", "claim.disputed"):
            if any(w.id == r.data.event_id for w in window):
                window.append(r)
        elif as_of is None or world_time.start(r.occurred_on) < world_time.start(as_of) + dt.timedelta(days=1):
            window.append(r)
    return window


def check_view(view, window: list[Recorded], as_of) -> None:
    ids = {str(r.id) for r in window}
    assert view.events == len(window)
    assert view.version == (window[-1].version if window else 0)
    behind = lineage(window, "issue" if isinstance(view, IssueView) else "negotiation")
    assert set(behind) <= ids and set(view.retracted) <= ids
    assert not set(behind) & set(view.retracted)
    assert all(d.dispute_id in ids and d.event_id in ids for d in view.disputes)
    facts = [r.occurred_on for r in window if str(r.id) in behind and r.type not in ("record.retracted", "claim.disputed")]
    assert view.last_activity_on == (max(facts, key=world_time.sort_key) if facts else None)
    if as_of is not None and view.last_activity_on is not None:
        assert world_time.occurred_by(view.last_activity_on, as_of)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@hgiven(st.data())
def test_every_field_of_a_past_view_comes_from_the_window(data):
    world = World().given(RAISE_X)
    for _ in range(data.draw(st.integers(8, 30))):
        if data.draw(st.integers(0, 3)) == 0:
            make = data.draw(st.sampled_from(V2))
            command = make(data.draw(st.sampled_from(DAYS)), data.draw(st.integers(0, 1)), data.draw(st.sampled_from(["RU", "UA", "TR"])))
        else:
            command = data.draw(commands(world))
        try:
            world._store(world.decide(command))
        except (DomainError, msgspec.ValidationError):
            pass
    as_of = data.draw(st.none() | st.sampled_from(DAYS))
    cut = data.draw(st.none() | st.integers(0, len(world.records) - 1))
    known_at = None if cut is None else world.records[cut].recorded_at
    if as_of is None and known_at is None:
        as_of = DAYS[2]
    for key in [*world.issues, None]:
        stream = world.stream(key)
        window = reference_window(stream, as_of, known_at)
        assert [r.id for r in select_known(stream, as_of=as_of, known_at=known_at)] == [r.id for r in window]
        if not window:
            continue
        view = fold_negotiation(window) if key is None else fold_issue(window)
        assert msgspec.json.encode(view) == msgspec.json.encode(
            fold_negotiation(select_known(stream, as_of=as_of, known_at=known_at)) if key is None
            else fold_issue(select_known(stream, as_of=as_of, known_at=known_at))
        )
        check_view(view, window, as_of)

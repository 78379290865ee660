"""Time travel from snapshots equals the log fold: for random histories of an
issue (late facts dated before earlier ones, timed and whole-day facts,
retractions, disputes, corrections of corrections), fed to
`IssueHistoryFold` in random batches as the projection does (sometimes from a
cold fold, as after a restart), the row the table would hold at the greatest
boundary <= as_of is byte for byte ``fold_issue(select_known(records,
as_of=...))`` -- or stale, and then only below the live folds."""

import datetime as dt

import msgspec
from hypothesis import HealthCheck, assume, settings
from hypothesis import given as hgiven
from hypothesis import strategies as st

from domain import world_time
from domain.errors import DomainError
from domain.records import Recorded
from domain.status import fold_issue, select_known
from projections import issue_snapshots
from projections.issue_snapshots import IssueHistoryFold, cut
from tests.unit.gwt import World, cmd
from tests.unit.test_properties import RAISE_X, commands

TIMES = [
    "2022-02-27", "2022-03-01", "2022-03-01T00:00:00+00:00", "2022-03-03T23:30:00-02:00", "2022-03-04",
    "2022-03-05", "2022-03-05T12:00:00+02:00", "2022-03-07", "2022-03-09", "2022-03-12T08:15:00.250000+00:00",
]  # fmt: skip
AS_OF = [
    "2022-02-26", "2022-02-27", "2022-02-28", "2022-03-01", "2022-03-01T00:00:00+00:00", "2022-03-02",
    "2022-03-04", "2022-03-04T01:29:59+00:00", "2022-03-04T01:30:00+00:00", "2022-03-05T09:59:59.999999Z",
    "2022-03-05T10:00:00Z", "2022-03-05", "2022-03-06", "2022-03-07", "2022-03-10", "2022-03-12T08:15:00.25Z",
    "2022-03-12T08:15:00.249999Z", "2022-03-12", "2030-01-01",
]  # fmt: skip


def expected(stream: list[Recorded], as_of: str) -> bytes | None:
    selected = select_known(stream, as_of=world_time.parse(as_of))
    if not selected or selected[0].type != "issue.raised":
        return None
    return msgspec.json.encode(fold_issue(selected))


def served(table: dict[dt.datetime, tuple[bool, bytes | None]], as_of: str):
    """What the read would answer from the table: ("stale",) or (bytes | None,)."""
    at = cut(world_time.parse(as_of))
    below = [b for b in table if b <= at]
    if not below:
        return (None,)
    stale, view = table[max(below)]
    return ("stale",) if stale else (view,)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@hgiven(st.data())
def test_the_snapshot_at_every_as_of_is_the_log_fold(data):
    live = data.draw(st.sampled_from([0, 1, 2, 32]))
    world = World().given(RAISE_X)
    for _ in range(data.draw(st.integers(4, 30))):
        if data.draw(st.integers(0, 2)) == 0:
            command = cmd("position.stated", data.draw(st.sampled_from(TIMES)), issue="x",
                          party=data.draw(st.sampled_from(["RU", "UA"])),
                          stance=data.draw(st.sampled_from(["demands", "rejects"])), summary="s")  # fmt: skip
        elif data.draw(st.integers(0, 2)) == 0:
            targets = [r for r in world.stream("x")]
            target = targets[data.draw(st.integers(0, len(targets) - 1))]
            kind = data.draw(st.sampled_from(["record.retracted", "claim.disputed"]))
            extra = {"reason": "r"} if kind == "record.retracted" else {"by": data.draw(st.sampled_from(["RU", "UA", "TR"])), "summary": "s"}
            command = cmd(kind, data.draw(st.sampled_from(TIMES)), event_id=str(target.id), **extra)
        else:
            command = data.draw(commands(world))
        try:
            world._store(world.decide(command))
        except (DomainError, msgspec.ValidationError):
            pass
    stream = world.stream("x")
    assume(len(stream) >= 3)

    saved = issue_snapshots.LIVE_BOUNDARIES
    issue_snapshots.LIVE_BOUNDARIES = live
    try:
        table: dict[dt.datetime, tuple[bool, bytes | None]] = {}
        fold = IssueHistoryFold()
        stored = 0
        while stored < len(stream):
            upto = data.draw(st.integers(stored + 1, len(stream)))
            if data.draw(st.integers(0, 4)) == 0:  # a cold fold cache: refold 1..upto
                fold = IssueHistoryFold(stream[:upto])
            else:
                for record in stream[stored:upto]:
                    fold.apply(record)
            assert fold.enabled  # the domain corrects only facts of the stream
            for boundary, stale, view in fold.take_rows(stored):
                table[boundary] = (stale, view)
            stored = upto
            # The table reflects versions 1..stored: check it against that prefix.
            prefix = stream[:stored]
            kept = 0
            for as_of in AS_OF:
                got = served(table, as_of)
                if got == ("stale",):
                    continue
                kept += 1
                assert got[0] == expected(prefix, as_of), (as_of, live)
            boundaries = {world_time.start(r.occurred_on) for r in prefix
                          if r.type not in ("record.retracted", "claim.disputed")}  # fmt: skip
            assert set(table) == boundaries
            if len(boundaries) <= live + 1:
                assert kept == len(AS_OF)  # nothing stale while every boundary is live
    finally:
        issue_snapshots.LIVE_BOUNDARIES = saved

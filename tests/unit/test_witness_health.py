"""A witness as /health/ready reports it (service.operations.witness_report) from
a process that does not ask it (`parley seal` runs elsewhere): its newest stored
cosignature is its last success, and a cosignature older than
WITNESS_STALE_AFTER (the cosigner asks every minute even on an idle log) means it
is failing, dated when it became overdue. Where this process asks it, its own
asks decide."""

from __future__ import annotations

import datetime as dt

from service.audit.ledger import SignedCheckpoint
from service.operations import WITNESS_STALE_AFTER, ComponentState, Cosigned, witness_report

T0 = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)
STALE = dt.timedelta(seconds=WITNESS_STALE_AFTER)


def checkpoint(size: int) -> SignedCheckpoint:
    return SignedCheckpoint(origin="o", tree_size=size, root=b"r", signed_at=T0, signature=b"s", public_key=b"k")


def test_a_recent_cosignature_is_ok_and_says_how_far_the_log_is_past_it() -> None:
    report = witness_report("w", "http://w", None, Cosigned(7, T0), checkpoint(9), T0, T0 + dt.timedelta(seconds=5))
    assert report.name == "witness w" and report.url == "http://w"
    assert report.ok and report.last_success == T0 and report.last_error is None
    assert report.events_behind == 2 and report.seconds_behind == 5


def test_a_stale_cosignature_is_failing_from_when_it_became_overdue() -> None:
    at = T0 + STALE + dt.timedelta(seconds=1)
    report = witness_report("w", "http://w", None, Cosigned(7, T0), checkpoint(9), T0, at)
    assert not report.ok and report.last_success == T0
    assert report.last_error_at == T0 + STALE and "no cosignature" in (report.last_error or "")
    assert witness_report("w", "http://w", None, Cosigned(7, T0), checkpoint(9), T0, T0 + STALE).ok


def test_never_cosigned_fails_only_once_the_first_checkpoint_is_overdue() -> None:
    assert witness_report("w", "u", None, None, None, None, T0 + 10 * STALE).ok  # nothing to cosign yet
    assert witness_report("w", "u", None, None, checkpoint(3), T0, T0 + STALE).ok
    late = witness_report("w", "u", None, None, checkpoint(3), T0, T0 + 2 * STALE)
    assert not late.ok and late.last_success is None and late.events_behind == 3


def test_where_this_process_asks_the_witness_its_own_asks_decide() -> None:
    state = ComponentState()
    state.failed(ConnectionError("refused"))
    report = witness_report("w", "u", state, Cosigned(7, T0), checkpoint(9), T0, T0 + dt.timedelta(seconds=1))
    assert not report.ok and report.last_error == "ConnectionError: refused"
    assert report.last_success == T0  # stored before this process asked: its last success until it gets one
    state.succeeded()
    assert witness_report("w", "u", state, Cosigned(9, T0), checkpoint(9), T0, T0).ok

"""World time as the API reads it: what a bad date or `as_of` is told, and where.
(Written to kill the mutants mutmut found surviving in domain/world_time.py:
pointers and sentences nothing checked.)"""

from __future__ import annotations

import datetime as dt

import pytest

from domain.errors import InvalidDate
from domain.world_time import occurred_by, parse, start


@pytest.mark.parametrize("value", ["26/09/2016", "2016-9-26", "yesterday"])
def test_a_misspelt_date_is_named_with_its_pointer_and_an_example(value):
    with pytest.raises(InvalidDate) as refused:
        parse(value)
    assert refused.value.pointer == "/occurred_on"
    assert value in refused.value.detail and "2022-03-10" in refused.value.detail


def test_a_date_that_does_not_exist_is_named_as_such():
    with pytest.raises(InvalidDate) as refused:
        parse("2022-02-30", "/starts_at")
    assert refused.value.pointer == "/starts_at"
    assert "2022-02-30" in refused.value.detail


def test_a_bad_as_of_points_at_as_of():
    with pytest.raises(InvalidDate) as refused:
        occurred_by("2022-03-01", "soon")
    assert refused.value.pointer == "/as_of"
    with pytest.raises(InvalidDate) as naive:
        occurred_by("2022-03-01", dt.datetime(2022, 3, 1, 12))
    assert naive.value.pointer == "/as_of" and "offset" in naive.value.detail


def test_days_begin_at_midnight_utc_and_instants_keep_their_moment():
    assert start("2022-03-01") == dt.datetime(2022, 3, 1, tzinfo=dt.timezone.utc)
    assert start("2022-03-01T02:00:00+02:00") == dt.datetime(2022, 3, 1, tzinfo=dt.timezone.utc)
    # A day has happened by its own end, in any spelling of as_of.
    assert occurred_by("2022-03-01", "2022-03-01")
    assert occurred_by("2022-03-01", dt.date(2022, 3, 1))
    assert not occurred_by("2022-03-02", dt.date(2022, 3, 1))
    assert occurred_by("2022-03-01T23:59:59+00:00", "2022-03-01")
    assert not occurred_by("2022-03-01T12:00:00+00:00", "2022-03-01T11:59:59+00:00")
    assert occurred_by("2022-03-01T12:00:00+00:00", "2022-03-01T14:00:00+02:00")

"""World time: when something happened in the world (``occurred_on``).

A fact is dated either by a calendar day (``2022-03-10``, the usual precision
of a news report) or by an instant with a UTC offset
(``2022-03-10T14:30:00+02:00``). Naive datetimes are refused: "14:30" means
nothing without knowing whose clock.

Comparing a day with an instant (documented rule, used by ``as_of`` and by
world-time ordering): a fact dated by a day *starts* at 00:00 UTC of that day,
so it sorts before every timed fact of the same UTC day; an ``as_of`` given as
a day covers that whole day (up to, not including, 00:00 UTC of the next day).
So ``as_of=2022-03-10`` includes everything dated the 10th, timed or not.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Annotated

import msgspec

from domain.errors import InvalidDate

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
WORLD_TIME_PATTERN = (
    r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))?$"
)
_DATE = re.compile(DATE_PATTERN)
_WORLD_TIME = re.compile(WORLD_TIME_PATTERN)
# A datetime written without its offset: the commonest mistake, named as such.
_NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")

WorldTime = Annotated[
    str,
    msgspec.Meta(
        min_length=10,
        max_length=35,
        pattern=WORLD_TIME_PATTERN,
        description="ISO 8601 date (2022-03-10) or datetime with UTC offset "
        "(2022-03-10T14:30:00+02:00).",
        examples=["2022-03-10"],
    ),
]
IsoDate = Annotated[
    str,
    msgspec.Meta(pattern=DATE_PATTERN, description="ISO 8601 date", examples=["2022-03-16"]),
]

UTC = dt.timezone.utc


def parse(value: str, pointer: str = "/occurred_on") -> dt.date | dt.datetime:
    """Parse a world time; the pattern alone lets through e.g. 2022-02-30."""
    if not isinstance(value, str) or not _WORLD_TIME.match(value):
        if isinstance(value, str) and _NAIVE.match(value):
            raise InvalidDate(
                f"{value!r} has no UTC offset, so it names no instant: add one, e.g. {value}Z or {value}+02:00.",
                pointer,
            )
        raise InvalidDate(
            f"{value!r} is not an ISO 8601 date or datetime: write e.g. 2022-03-10, or "
            "2022-03-10T14:30:00+02:00 (a datetime needs its UTC offset).",
            pointer,
        )
    try:
        if _DATE.match(value):
            return dt.date.fromisoformat(value)
        parsed = dt.datetime.fromisoformat(value)
        # Facts are sorted and folded by their instant in UTC, which must exist too.
        if parsed.tzinfo is not None:
            parsed.astimezone(UTC)
        return parsed
    except ValueError as exc:
        raise InvalidDate(
            f"{value!r} is not a real date or time ({exc}): write e.g. 2022-03-10 or 2022-03-10T14:30:00+02:00.",
            pointer,
        ) from None
    except OverflowError:
        raise InvalidDate(
            f"{value!r} has no instant in UTC within years 1-9999: write e.g. 2022-03-10T14:30:00+02:00.", pointer
        ) from None


def normalise(value: str, pointer: str = "/occurred_on") -> str:
    """Canonical spelling, so equal times hash and sort alike.

    The offset is kept (a reader wants "13 March, Moscow time"), but ``Z``
    becomes ``+00:00`` and seconds are always present.
    """
    parsed = parse(value, pointer)
    if isinstance(parsed, dt.datetime):
        return parsed.isoformat(timespec="microseconds" if parsed.microsecond else "seconds")
    return parsed.isoformat()


def start(value: str) -> dt.datetime:
    """The instant a fact's world time begins (days begin at 00:00 UTC)."""
    parsed = parse(value)
    if isinstance(parsed, dt.datetime):
        return parsed.astimezone(UTC)
    return dt.datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)


# Memoised: every fold computes it for every fact, and a log repeats few distinct
# dates (bench.history: half of a 20,000-event fold went to re-parsing them).
@functools.lru_cache(maxsize=65536)
def sort_key(value: str) -> tuple[dt.datetime, int]:
    """World-time order: by start; a whole day before timed facts of that day."""
    parsed = parse(value)
    return (start(value), 0 if not isinstance(parsed, dt.datetime) else 1)


def occurred_by(occurred_on: str, as_of: str | dt.date | dt.datetime) -> bool:
    """True when a fact dated ``occurred_on`` had happened by world time ``as_of``."""
    if isinstance(as_of, str):
        as_of = parse(as_of, "/as_of")
    fact = start(occurred_on)
    if isinstance(as_of, dt.datetime):
        if as_of.tzinfo is None:
            raise InvalidDate("as_of needs a UTC offset, e.g. 2022-03-10T14:30:00+02:00", "/as_of")
        return fact <= as_of.astimezone(UTC)
    end_of_day = dt.datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) + dt.timedelta(days=1)
    return fact < end_of_day

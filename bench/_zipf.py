"""Choosing streams with a Zipf distribution: a few hot streams, a long cold tail.

Rank k (1-based) is chosen with probability proportional to 1 / k**s. With s = 1
over 10,000 streams the hottest stream gets ~10% of the writes and half of all
writes go to the ~100 hottest, which is what makes concurrent writers meet on the
same stream head.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class ZipfChooser(Generic[T]):
    def __init__(self, items: Sequence[T], exponent: float = 1.0, seed: int | None = None) -> None:
        weights = [1.0 / (rank**exponent) for rank in range(1, len(items) + 1)]
        self._items = list(items)
        self._cumulative = list(itertools.accumulate(weights))
        self._random = random.Random(seed)

    def pick(self) -> T:
        point = self._random.random() * self._cumulative[-1]
        return self._items[bisect.bisect_left(self._cumulative, point)]

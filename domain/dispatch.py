"""Dispatch on the payload class: how folds and sentences find their handler.

A method (or function) marked ``@handles(ProposalMade, ProposalCountered)`` is
the handler of those payload classes; :func:`handlers_of` collects the marked
methods of a class (its bases' too, a subclass's own winning) into a table keyed
by payload class, and :func:`handler_table` does the same for module-level
functions. Dispatch is then one dictionary lookup on ``type(record.data)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from domain.events import Payload

F = TypeVar("F", bound=Callable[..., Any])


def handles(*payload_classes: type[Payload]) -> Callable[[F], F]:
    def mark(handler: F) -> F:
        handler.handles = payload_classes  # type: ignore[attr-defined]
        return handler

    return mark


def handler_table(handlers: Iterable[Any]) -> dict[type[Payload], Any]:
    table: dict[type[Payload], Any] = {}
    for handler in handlers:
        for payload_class in getattr(handler, "handles", ()):
            if payload_class in table:
                raise TypeError(f"two handlers for {payload_class.__name__}")
            table[payload_class] = handler
    return table


def handlers_of(cls: type) -> dict[type[Payload], Callable[..., Any]]:
    """The marked methods of ``cls`` and its bases, by payload class."""
    table: dict[type[Payload], Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        table.update(handler_table(vars(klass).values()))
    return table

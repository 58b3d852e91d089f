"""One source of time: timezone-aware UTC. Tests freeze it with ``frozen``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    """The current time, timezone-aware UTC (or the frozen time in tests)."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC)


def freeze(at: datetime | None) -> None:
    """Freeze the clock at ``at`` (aware); ``None`` unfreezes."""
    global _frozen
    if at is not None and at.tzinfo is None:
        raise ValueError("frozen time must be timezone-aware")
    _frozen = at.astimezone(UTC) if at is not None else None


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Context manager that freezes the clock at ``at`` and restores it after."""
    previous = _frozen
    freeze(at)
    try:
        yield
    finally:
        freeze(previous)


def as_utc(value: datetime) -> datetime:
    """Treat a naive datetime as UTC; convert an aware one to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)

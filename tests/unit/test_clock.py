from datetime import UTC, datetime, timedelta

import pytest

from partnernet import clock


def test_now_is_aware_utc():
    assert clock.now().tzinfo is not None
    assert clock.now().utcoffset() == timedelta(0)


def test_frozen_and_restored():
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with clock.frozen(at):
        assert clock.now() == at
    assert clock.now() != at


def test_naive_freeze_refused():
    with pytest.raises(ValueError):
        clock.freeze(datetime(2026, 1, 1))  # noqa: DTZ001

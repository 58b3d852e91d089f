"""Click ids carry their UTC day; what ``click_id_day`` makes of ids that do not."""

from datetime import UTC, datetime, timedelta

from partnernet import clock, tokens


def test_a_click_id_names_its_utc_day_and_stays_32_hex():
    at = datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)
    click_id = tokens.click_id_for(at)
    assert len(click_id) == 32 and int(click_id, 16) >= 0
    with clock.frozen(at):
        assert tokens.click_id_day(click_id) == (datetime(2026, 11, 29, tzinfo=UTC),
                                                 datetime(2026, 11, 30, tzinfo=UTC))
    assert tokens.click_id_for(at) != click_id  # the rest is random


def test_ids_naming_no_usable_day_give_none_and_the_lookup_uses_its_usual_range():
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    with clock.frozen(now):
        assert tokens.click_id_day("zz" + "0" * 30) is None  # not hex
        assert tokens.click_id_day("") is None
        assert tokens.click_id_day(tokens.click_id_for(now + timedelta(days=3))) is None  # future
        assert tokens.click_id_day(tokens.click_id_for(now + timedelta(hours=20))) is not None

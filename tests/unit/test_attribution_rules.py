"""Pure attribution rules and outgoing-postback helpers, without a database."""

from datetime import UTC, datetime, timedelta

import pytest

from partnernet.conversions.attribution import pick_source, within_window
from partnernet.conversions.outgoing import (
    MAX_ATTEMPTS,
    address_is_public,
    next_attempt_delay,
    render_url,
    signature,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("click", "coupon", "priority", "expected"), [
    (True, True, "coupon_first", "coupon"),
    (True, True, "click_first", "click"),
    (True, False, "coupon_first", "click"),
    (False, True, "click_first", "coupon"),
    (False, False, "coupon_first", None),
])
def test_pick_source(click, coupon, priority, expected):
    assert pick_source(click, coupon, priority) == expected


def test_window_is_inclusive_and_refuses_clicks_from_the_future():
    assert within_window(NOW - timedelta(days=30), NOW, 30)
    assert not within_window(NOW - timedelta(days=30, seconds=1), NOW, 30)
    assert within_window(NOW, NOW, 1)
    assert not within_window(NOW + timedelta(hours=1), NOW, 30)


def test_macros_are_url_encoded_so_a_value_cannot_add_parameters():
    url = render_url("https://t.example/pb?c={click_id}&o={order_id}&s={sub1}&x={unknown}",
                     {"click_id": "abc", "order_id": "A&admin=1 #", "sub1": None})
    assert url == "https://t.example/pb?c=abc&o=A%26admin%3D1%20%23&s=&x={unknown}"


def test_backoff_grows_and_gives_up_after_at_least_five_tries_over_hours():
    delays = [next_attempt_delay(n) for n in range(1, MAX_ATTEMPTS)]
    assert all(d is not None for d in delays)
    assert delays == sorted(delays) and len(delays) >= 4
    assert sum(d.total_seconds() for d in delays) >= 3 * 3600
    assert next_attempt_delay(MAX_ATTEMPTS) is None
    assert MAX_ATTEMPTS >= 5


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.216.34", True), ("2606:2800:220:1::1", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("::1", False),
    ("fe80::1", False), ("fd00:ec2::254", False), ("::ffff:127.0.0.1", False),
    ("224.0.0.1", False), ("240.0.0.1", False),
])
def test_only_global_addresses_are_public(address, public):
    assert address_is_public(address) is public


def test_signature_is_hmac_of_timestamp_and_url():
    import hashlib
    import hmac

    expected = hmac.new(b"s3cret", b"1700000000.https://t.example/x", hashlib.sha256).hexdigest()
    assert signature("s3cret", 1700000000, "https://t.example/x") == f"sha256={expected}"

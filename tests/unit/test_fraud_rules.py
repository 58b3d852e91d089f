"""Each fraud rule's decision without a database: fires, does not fire, threshold, shadow."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from partnernet.commissions import fraud
from partnernet.commissions.fraud import Facts

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def h(email):
    return hashlib.sha256(email.encode()).hexdigest()


def facts(trailing_amounts=None, **kw):
    if trailing_amounts is not None:
        kw["trailing_sample"] = fraud.sample_of(trailing_amounts)
    return Facts(converted_at=NOW, **kw)


# (rule, facts that fire it, facts that do not, threshold used)
CASES = [
    ("fast_conversion", facts(clicked_at=NOW - timedelta(seconds=9)),
     facts(clicked_at=NOW - timedelta(seconds=10)), 10),
    ("fast_conversion", facts(clicked_at=NOW - timedelta(seconds=59)),
     facts(clicked_at=None), 60),
    ("self_referral", facts(customer_email_hash=h("a@x.io"), partner_email_hash=h("a@x.io")),
     facts(customer_email_hash=h("b@x.io"), partner_email_hash=h("a@x.io")), None),
    ("self_referral", facts(customer_email_domain="creator.io", partner_email_domain="creator.io"),
     facts(customer_email_domain="gmail.com", partner_email_domain="gmail.com"), None),
    ("duplicate_ip", facts(same_ip_conversions_24h=3), facts(same_ip_conversions_24h=2), 3),
    ("duplicate_ip", facts(same_ip_conversions_24h=1), facts(same_ip_conversions_24h=0), 1),
    ("blocked_ip", facts(ips=["203.0.113.9"], blocklist=["203.0.113.0/24"]),
     facts(ips=["198.51.100.1"], blocklist=["203.0.113.0/24", "not-an-ip"]), None),
    ("blocked_ip", facts(ips=["2001:db8::1"], blocklist=["2001:db8::/32"]),
     facts(ips=["garbage"], blocklist=["0.0.0.0/0"]), None),
    ("bot_click", facts(click_is_bot=True), facts(click_is_bot=False), None),
    ("paid_ads", facts(click_paid_ads="gclid", offer_allows_paid_search=False),
     facts(click_paid_ads="gclid", offer_allows_paid_search=True), None),
    ("coupon_leak", facts(is_coupon=True, coupon_partner_involved=False),
     facts(is_coupon=True, coupon_partner_involved=True), None),
    ("amount_outlier", facts(amount_minor=10001, trailing_amounts=[1000] * 5),
     facts(amount_minor=10000, trailing_amounts=[1000] * 5), 10),
    ("amount_outlier", facts(amount_minor=3001, trailing_amounts=[900, 1000, 1100, 1000, 5]),
     facts(amount_minor=999999, trailing_amounts=[1000] * 4), 3),  # too few samples: silent
    ("cap_exceeded", facts(daily_cap=5, partner_conversions_today=5),
     facts(daily_cap=5, partner_conversions_today=4), None),
]


@pytest.mark.parametrize(("rule", "fires", "quiet", "threshold"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_fires_and_does_not(rule, fires, quiet, threshold):
    decide = fraud.RULES[rule]
    assert decide(fires, threshold) is not None
    assert decide(quiet, threshold) is None


def test_evaluate_records_the_rules_default_action():
    flags = fraud.evaluate(facts(click_is_bot=True, ips=["10.0.0.1"], blocklist=["10.0.0.0/8"]),
                           fraud.rule_settings({}))
    assert [(f["rule"], f["action"]) for f in flags] == [("blocked_ip", "reject"), ("bot_click", "hold")]
    assert all(f["reason"] for f in flags)
    assert fraud.status_for(flags) == "rejected"


def test_shadow_mode_records_what_it_would_do_and_holds_nothing():
    settings = fraud.rule_settings({"rules": {"bot_click": {"mode": "shadow"}}})
    flags = fraud.evaluate(facts(click_is_bot=True), settings)
    assert flags == [{"rule": "bot_click", "reason": flags[0]["reason"], "action": "shadow",
                      "would": "hold"}]
    assert fraud.status_for(flags) == "pending" and not fraud.has_open_flags(flags)


def test_disabled_rule_is_silent_and_action_is_per_merchant():
    f = facts(click_is_bot=True)
    assert fraud.evaluate(f, fraud.rule_settings({"rules": {"bot_click": {"enabled": False}}})) == []
    flags = fraud.evaluate(f, fraud.rule_settings({"rules": {"bot_click": {"action": "reject"}}}))
    assert fraud.status_for(flags) == "rejected"


def test_per_merchant_threshold():
    f = facts(clicked_at=NOW - timedelta(seconds=30))
    assert fraud.evaluate(f, fraud.rule_settings({})) == []  # default 10 s
    strict = fraud.rule_settings({"rules": {"fast_conversion": {"threshold": 60}}})
    assert [x["rule"] for x in fraud.evaluate(f, strict)] == ["fast_conversion"]


@pytest.mark.parametrize(("requires_click", "action", "status"), [
    (True, "reject", "rejected"), (False, "flag", "pending")])
def test_coupon_leak_rejects_only_on_offers_that_credit_involved_partners(requires_click, action, status):
    f = facts(is_coupon=True, coupon_partner_involved=False, coupon_requires_click=requires_click)
    flags = fraud.evaluate(f, fraud.rule_settings({}))
    assert [(x["rule"], x["action"]) for x in flags] == [("coupon_leak", action)]
    assert fraud.status_for(flags) == status


def test_every_rule_has_a_default():
    assert set(fraud.DEFAULT_RULES) == set(fraud.RULES) == {
        "fast_conversion", "self_referral", "duplicate_ip", "blocked_ip", "bot_click", "paid_ads",
        "coupon_leak", "amount_outlier", "cap_exceeded"}
    assert fraud.DEFAULT_RULES["fast_conversion"]["threshold"] == 10
    assert fraud.DEFAULT_RULES["duplicate_ip"]["threshold"] == 3
    assert fraud.DEFAULT_RULES["amount_outlier"]["threshold"] == 10
    assert fraud.DEFAULT_RULES["blocked_ip"]["action"] == "reject"


@pytest.mark.parametrize(("rule", "patch", "ok"), [
    ("fast_conversion", {"threshold": 30, "action": "reject", "mode": "shadow"}, True),
    ("amount_outlier", {"threshold": "2.5"}, True),
    ("fast_conversion", {"threshold": -1}, False),
    ("fast_conversion", {"threshold": True}, False),
    ("bot_click", {"threshold": 3}, False),   # no threshold
    ("bot_click", {"action": "explode"}, False),
    ("bot_click", {"mode": "loud"}, False),
    ("bot_click", {"enabled": "yes"}, False),
    ("bot_click", {"colour": "red"}, False),
    ("no_such_rule", {}, False),
])
def test_settings_are_validated(rule, patch, ok):
    if ok:
        assert fraud.validate_rule_patch(rule, patch)
    else:
        with pytest.raises(ValueError):
            fraud.validate_rule_patch(rule, patch)


def test_amount_outlier_takes_a_sample_the_database_counted_instead_of_the_amounts():
    """The postback's read hands the rule (count, median), not the amounts: the same answers."""
    from decimal import Decimal

    from partnernet.commissions.fraud import Facts, amount_outlier

    at = datetime(2026, 1, 1, tzinfo=UTC)
    assert amount_outlier(Facts(converted_at=at, amount_minor=10500,
                                trailing_sample=(6, Decimal("1050"))), 10) is None
    assert amount_outlier(Facts(converted_at=at, amount_minor=10501,
                                trailing_sample=(6, Decimal("1050.0"))), 10) is not None
    assert amount_outlier(Facts(converted_at=at, amount_minor=10501,
                                trailing_sample=(6, Decimal("1050.5"))), 10) is None
    # too few samples, or none: silent
    assert amount_outlier(Facts(converted_at=at, amount_minor=10**9,
                                trailing_sample=(4, Decimal("1000"))), 10) is None
    assert amount_outlier(Facts(converted_at=at, amount_minor=10**9,
                                trailing_sample=(0, None)), 10) is None


def test_the_trailing_median_is_exact_for_an_even_count_of_large_amounts():
    """The mean of the two middle amounts in Decimal: a float would round these."""
    from decimal import Decimal

    big = 10**17
    assert fraud.sample_of([big + 1, big, big + 1, big, big, big + 1]) == (6, Decimal(big) + Decimal("0.5"))
    assert fraud.sample_of([5, 1, 3, 2, 4]) == (5, 3)
    assert fraud.sample_of([]) == (0, None)

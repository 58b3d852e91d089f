"""Property: whatever happens between rollup runs (new clicks, conversions in two
currencies, CPC accruals, refunds, status changes), the report from the rollups equals
the same report aggregated from the raw tables. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partnernet import clock
from tests.factories import make_merchant, make_offer, make_partner

START = datetime(2026, 4, 1, 22, tzinfo=UTC)

click_st = st.fixed_dictionaries({
    "offer": st.integers(0, 1), "partner": st.integers(0, 1),
    "sub1": st.sampled_from([None, "a"]), "country": st.sampled_from([None, "US", "FR"]),
    "unique": st.booleans(), "bot": st.booleans(), "minutes_ago": st.integers(0, 600)})
conversion_st = st.fixed_dictionaries({
    "click": st.integers(0, 50) | st.none(), "partner": st.integers(0, 1),
    "event": st.sampled_from(["sale", "sale", "lead", "renewal"]),
    "currency": st.sampled_from(["USD", "EUR"]), "amount": st.integers(1, 100_000) | st.none(),
    "commission": st.integers(0, 10_000) | st.none(),
    "status": st.sampled_from(["pending", "held", "approved", "rejected", "paid"])})
change_st = st.fixed_dictionaries({
    "conversion": st.integers(0, 50), "refund_permille": st.integers(0, 1000),
    "status": st.sampled_from(["approved", "rejected", "held", "reversed", "paid"])})
step_st = st.one_of(
    st.tuples(st.just("clicks"), st.lists(click_st, min_size=1, max_size=8)),
    st.tuples(st.just("conversions"), st.lists(conversion_st, min_size=1, max_size=4)),
    st.tuples(st.just("change"), change_st),
    st.tuples(st.just("cpc"), st.integers(1, 5_000)),
    st.tuples(st.just("rollup"), st.just(None)),
    st.tuples(st.just("wait"), st.integers(1, 60 * 30)),
)


@pytest.fixture
def network(app):
    shop = make_merchant()
    offers = [make_offer(shop.merchant.id), make_offer(shop.merchant.id, currency="EUR")]
    partners = [make_partner(shop.merchant.id), make_partner(shop.merchant.id)]
    return shop, offers, partners


def _wipe():
    from sqlalchemy import delete

    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db
    from partnernet.links.models import Click, Link
    from partnernet.reports.models import (
        ClickRollup,
        ConversionRollup,
        PartnerDayClickRollup,
        PartnerDayConversionRollup,
        PartnerDayReportRow,
        RollupWatermark,
    )

    for model in (Commission, Conversion, Click, Link, ClickRollup, ConversionRollup,
                  PartnerDayClickRollup, PartnerDayConversionRollup, PartnerDayReportRow,
                  RollupWatermark):
        db.session.execute(delete(model))
    db.session.commit()


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(step_st, st.booleans()), min_size=1, max_size=14))
def test_rollup_equals_raw_aggregation(network, steps):
    from partnernet import tokens
    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db
    from partnernet.links.models import Click, Link
    from partnernet.reports.rollup import Scope, run_rollup
    from partnernet.reports.services import build_report

    shop, offers, partners = network
    _wipe()
    now = START
    clicks: list[Click] = []
    conversions: list[tuple[Conversion, Commission | None]] = []
    for (kind, arg), rollup_after in steps:
        now += timedelta(minutes=7)
        with clock.frozen(now):
            if kind == "wait":
                now += timedelta(minutes=arg)
            elif kind == "rollup":
                run_rollup(settle_seconds=0)
            elif kind == "clicks":
                for c in arg:
                    offer, partner = offers[c["offer"]], partners[c["partner"]]
                    link = Link(code=tokens.new_code(10), merchant_id=offer.merchant_id,
                                offer_id=offer.id, partner_id=partner.id)
                    db.session.add(link)
                    db.session.flush()
                    # Clicks are stored as they happen: never before the previous step.
                    at = now - timedelta(seconds=c["minutes_ago"] % 400)
                    click = Click(id=tokens.new_click_id(), link_id=link.id,
                                  merchant_id=offer.merchant_id, offer_id=offer.id,
                                  partner_id=partner.id, created_at=at, sub1=c["sub1"],
                                  country=c["country"], is_unique=c["unique"] and not c["bot"],
                                  is_bot=c["bot"])
                    db.session.add(click)
                    clicks.append(click)
            elif kind == "conversions":
                for c in arg:
                    click = clicks[c["click"] % len(clicks)] if c["click"] is not None and clicks \
                        else None
                    offer = offers[0] if click is None else \
                        next(o for o in offers if o.id == click.offer_id)
                    partner_id = partners[c["partner"]].id if click is None else click.partner_id
                    conv = Conversion(merchant_id=offer.merchant_id, offer_id=offer.id,
                                      partner_id=partner_id, click_id=click.id if click else None,
                                      event=c["event"], order_id=tokens.new_code(12),
                                      amount_minor=c["amount"], currency=c["currency"],
                                      created_at=now)
                    db.session.add(conv)
                    db.session.flush()
                    comm = None
                    if c["commission"] is not None:
                        comm = Commission(merchant_id=offer.merchant_id, partner_id=partner_id,
                                          offer_id=offer.id, conversion_id=conv.id,
                                          amount_minor=c["commission"], currency=c["currency"],
                                          status=c["status"], hold_until=now, created_at=now)
                        db.session.add(comm)
                    conversions.append((conv, comm))
            elif kind == "change" and conversions:
                conv, comm = conversions[arg["conversion"] % len(conversions)]
                if conv.amount_minor:
                    conv.refunded_minor = conv.amount_minor * arg["refund_permille"] // 1000
                    conv.status = "partially_refunded" if conv.refunded_minor else "approved"
                if comm is not None:
                    comm.status = arg["status"]
                    comm.reversed_minor = comm.amount_minor * arg["refund_permille"] // 1000
            elif kind == "cpc":
                db.session.add(Commission(
                    merchant_id=offers[0].merchant_id, partner_id=partners[0].id,
                    offer_id=offers[0].id, conversion_id=None, kind="cpc", amount_minor=arg,
                    currency="USD", status="approved", hold_until=now, created_at=now))
            db.session.commit()
            if rollup_after:
                run_rollup(settle_seconds=0)
    now += timedelta(minutes=1)
    with clock.frozen(now):
        run_rollup(settle_seconds=0)
    scope = Scope(merchant_id=shop.merchant.id)
    first, last = START.date(), now.date()
    for group_by in (["day", "offer", "partner", "sub1"], ["partner", "day"], ["channel"],
                     ["month"]):
        rolled = build_report(scope, group_by, first, last)
        raw = build_report(scope, group_by, first, last, force_source="raw")
        assert rolled.source == "rollup"
        assert rolled.rows == raw.rows
    # The partner × day rows the job keeps whole, read with the filters and scopes they serve.
    channel = partners[1].channel_type
    for kept_scope, filters in ((scope, {"channel": channel}), (scope, {"partner_id": partners[0].id}),
                                (Scope(merchant_id=shop.merchant.id, partner_id=partners[1].id),
                                 {})):
        rolled = build_report(kept_scope, ["day", "partner"], first, last, filters)
        raw = build_report(kept_scope, ["day", "partner"], first, last, filters,
                           force_source="raw")
        assert rolled.values == raw.values
    totals = build_report(scope, ["month"], first, last).rows
    if clicks:
        assert totals[0]["clicks"] == len(clicks)
    # Country is not in the rollups: the raw country split must add up to the totals.
    by_country = build_report(scope, ["country"], first, last)
    assert by_country.source == "raw"
    clicks_by_country = {r["country"]: r["clicks"] for r in by_country.rows}
    assert sum(clicks_by_country.values()) == (totals[0]["clicks"] if totals else 0)
    for total in totals:
        mine = [r for r in by_country.rows if r["currency"] == total["currency"]]
        for name in ("conversions", "sales", "leads", "held", "rejected"):
            assert sum(r[name] for r in mine) == total[name], name
        if total["currency"] is not None:
            for name in ("revenue", "refunds", "commission"):
                assert sum(Decimal(r[name]) for r in mine) == Decimal(total[name]), name

"""`partnernet privacy erase --email`: personal data gone, money records and the ledger intact."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from partnernet.extensions import db
from tests.factories import make_click_row, make_merchant, make_offer, make_partner

PASSWORD = "correct horse battery"


def run(app: Any, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result


def money(model: Any) -> list[tuple[Any, ...]]:
    db.session.expire_all()
    return sorted(db.session.execute(select(model.id, model.amount_minor)).all())


def test_erasing_a_customer_and_a_partner_keeps_the_money_and_the_ledger(app: Any) -> None:
    from partnernet.accounts.models import Partner, User
    from partnernet.commissions.models import Commission, LedgerEntry
    from partnernet.conversions.models import Conversion, Postback
    from partnernet.links.models import Click

    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id, email="creator@insta.example", name="Cora Creator",
                           password=PASSWORD)
    click = make_click_row(offer, partner.id, visitor_id="v-erase", user_agent="Mozilla/5.0 Cora",
                           referer="https://insta.example/cora")
    client = app.test_client()
    answer = client.get("/postback", query_string={
        "token": shop.postback_token, "click_id": click.id, "order_id": "E-1", "amount": "80.00",
        "customer_email": "Jane.Doe@Mail.example", "customer_id": "cust-77"})
    assert answer.status_code == 200, answer.get_json()
    other = make_click_row(offer, partner.id, visitor_id="v-other")
    assert client.get("/postback", query_string={
        "token": shop.postback_token, "click_id": other.id, "order_id": "E-2", "amount": "10.00",
        "customer_email": "someone@else.example"}).status_code == 200
    commissions, entries = money(Commission), money(LedgerEntry)

    output = run(app, "privacy", "erase", "--email", "jane.doe@mail.example").output
    assert "1 conversions" in output
    db.session.expire_all()
    erased = db.session.scalar(select(Conversion).where(Conversion.order_id == "E-1"))
    kept = db.session.scalar(select(Conversion).where(Conversion.order_id == "E-2"))
    assert not (erased.customer_email_hash or erased.customer_email_domain or erased.customer_id)
    assert erased.amount_minor == 8000
    assert kept.customer_email_hash is not None  # somebody else's data stays
    raw = db.session.scalar(select(Postback).where(Postback.conversion_id == erased.id))
    assert "customer_email" not in raw.params and "customer_id" not in raw.params
    erased_click = db.session.scalar(select(Click).where(Click.id == click.id))
    assert (erased_click.visitor_id, erased_click.user_agent, erased_click.referer) == (None, None, None)
    assert db.session.scalar(select(Click).where(Click.id == other.id)).visitor_id == "v-other"

    run(app, "privacy", "erase", "--email", "Creator@Insta.example")
    db.session.expire_all()
    gone = db.session.get(Partner, partner.id)
    assert "Cora" not in gone.name and "insta" not in gone.email
    assert db.session.scalar(select(func.count()).select_from(User)
                             .where(User.email == "creator@insta.example")) == 0
    assert client.post("/login", data={"email": "creator@insta.example",
                                       "password": PASSWORD}).status_code != 302
    # Money untouched, ledger consistent.
    assert money(Commission) == commissions and money(LedgerEntry) == entries
    run(app, "ledger", "verify")


def test_erasing_an_unknown_email_changes_nothing(app: Any) -> None:
    shop = make_merchant()
    make_partner(shop.merchant.id, email="keep@me.example")
    output = run(app, "privacy", "erase", "--email", "nobody@nowhere.example").output
    assert "0 conversions" in output and "0 partners" in output

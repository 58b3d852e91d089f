"""Shared set-up for the commissions tests: a shop, an offer, a partner, postbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from partnernet import clock
from tests.factories import make_click_row, make_merchant, make_offer, make_partner

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


class Shop:
    """A merchant with one offer and one partner, driving postbacks through the test client."""

    def __init__(self, client: Any, *, currency: str = "USD", plans: list[dict[str, Any]] | None = None,
                 **offer: Any) -> None:
        self.client = client
        self.new = make_merchant(currency=currency)
        self.merchant_id = self.new.merchant.id
        self.api_key = self.new.api_key
        self.offer = make_offer(self.merchant_id, currency=currency,
                                plans=plans or [{"event": "sale", "type": "cps", "percent": "10"}],
                                **offer)
        self.partner = make_partner(self.merchant_id)
        self.orders = 0

    def click(self, *, age: timedelta = timedelta(hours=1), partner_id: int | None = None,
              **fields: Any) -> Any:
        return make_click_row(self.offer, partner_id or self.partner.id, at=clock.now() - age, **fields)

    def postback(self, amount: str | None = "49.90", *, click: Any = None, expect: int = 200,
                 **params: Any) -> dict[str, Any]:
        self.orders += 1
        if click is None and "coupon" not in params:
            click = self.click()
        query = {"token": self.new.postback_token, "order_id": f"O-{self.orders}", "amount": amount}
        if click is not None:
            query["click_id"] = click.id
        query.update(params)
        r = self.client.get("/postback", query_string={k: v for k, v in query.items() if v is not None})
        assert r.status_code == expect, r.get_json()
        return r.get_json()

    def sale(self, amount: str | None = "49.90", **params: Any) -> dict[str, Any]:
        """A sale's commission object (from the postback answer)."""
        return self.postback(amount, **params)["commission"]

    def refund(self, order_id: str, amount: str | None = None) -> dict[str, Any]:
        query = {"token": self.new.postback_token, "order_id": order_id, "status": "refunded",
                 "amount": amount}
        r = self.client.get("/postback", query_string={k: v for k, v in query.items() if v is not None})
        assert r.status_code == 200, r.get_json()
        return r.get_json()

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def commission(commission_id: int) -> Any:
    from partnernet.commissions.models import Commission
    from partnernet.extensions import db

    db.session.expire_all()
    return db.session.get(Commission, commission_id)


def entries(commission_id: int | None = None, partner_id: int | None = None) -> list[tuple[str, int]]:
    from partnernet.commissions.models import LedgerEntry
    from partnernet.extensions import db

    db.session.expire_all()
    stmt = select(LedgerEntry.kind, LedgerEntry.amount_minor).order_by(LedgerEntry.id)
    if commission_id is not None:
        stmt = stmt.where(LedgerEntry.commission_id == commission_id)
    if partner_id is not None:
        stmt = stmt.where(LedgerEntry.partner_id == partner_id)
    return [(kind, amount) for kind, amount in db.session.execute(stmt)]


def balance(merchant_id: int, partner_id: int, currency: str = "USD") -> int:
    from partnernet.commissions.ledger import ledger_balance

    return ledger_balance(merchant_id, partner_id, currency)


def count(model: Any, *where: Any) -> int:
    from partnernet.extensions import db

    return int(db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def assert_ledger_ok() -> None:
    from partnernet.commissions.ledger import verify_ledger

    assert [str(d) for d in verify_ledger()] == []

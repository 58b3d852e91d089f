"""Small factory functions for test data (each call makes new, independent rows)."""

from __future__ import annotations

import itertools
from typing import Any

_seq = itertools.count(1)


def make_merchant(name: str | None = None, currency: str = "USD", password: str | None = None) -> Any:
    """A merchant with owner, API key and postback credentials (a NewMerchant)."""
    from partnernet.accounts.services import create_merchant

    n = next(_seq)
    return create_merchant(name or f"Shop {n}", f"owner{n}@shop{n}.example", password, currency)


def make_partner(merchant_id: int, *, email: str | None = None, name: str | None = None,
                 status: str = "approved", password: str | None = None) -> Any:
    from partnernet.accounts.services import create_partner

    n = next(_seq)
    partner, _ = create_partner(merchant_id, email=email or f"partner{n}@creator{n}.example",
                                name=name or f"Partner {n}", status=status, password=password)
    return partner


def offer_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Spring sale",
        "landing_url": "https://shop.example/landing?src=aff",
        "plans": [{"event": "sale", "type": "cps", "percent": "10"}],
    }
    body.update(overrides)
    return body


def make_offer(merchant_id: int, **overrides: Any) -> Any:
    from partnernet.offers.schemas import OfferIn
    from partnernet.offers.services import create_offer

    return create_offer(merchant_id, OfferIn().load(offer_body(**overrides)))


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}

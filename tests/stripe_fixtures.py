"""Fixtures of the payout and Stripe tests (a pytest plugin, loaded by tests/conftest.py).

A module tunes them with constants: ``FAKE_STRIPE_HANG_SECONDS`` (how long the fake's
"hang" answers wait; default 3) and ``SHOP_NAME`` (the merchant the ``shop`` fixture makes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories import make_merchant, make_offer
from tests.fakestripe import FakeStripe
from tests.payout_helpers import stripe_config


@pytest.fixture
def fake(request: pytest.FixtureRequest) -> Iterator[FakeStripe]:
    """The fake Stripe server the real ``stripe`` library talks to."""
    server = FakeStripe(hang_seconds=getattr(request.module, "FAKE_STRIPE_HANG_SECONDS", 3)).start()
    yield server
    server.stop()


@pytest.fixture
def papp(app_factory: Any, fake: FakeStripe) -> Iterator[Any]:
    """An app configured for Stripe on the fake, inside its app context."""
    app = app_factory(**stripe_config(fake.url))
    with app.app_context():
        yield app


@pytest.fixture
def shop(papp: Any, request: pytest.FixtureRequest) -> Any:
    """A merchant with one offer (``shop.offer``)."""
    shop = make_merchant(name=getattr(request.module, "SHOP_NAME", "Payout shop"))
    shop.offer = make_offer(shop.merchant.id)
    return shop

"""``/api/v1/privacy/settings``: a merchant reads and changes its click retention and
cookieless mode from a script, within the same bounds as the panel, audited, per merchant."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from partnernet.accounts.models import AuditEvent
from partnernet.extensions import db
from partnernet.links.models import Link
from tests.factories import auth, make_click_row, make_merchant, make_offer, make_partner

URL = "/api/v1/privacy/settings"
#: A new merchant keeps clicks 13 months (a year of seasonality plus one month).
DEFAULT_DAYS = 395
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def test_reading_needs_a_key_and_shows_the_defaults(client: Any) -> None:
    shop = make_merchant()
    assert client.get(URL).status_code == 401
    answer = client.get(URL, headers=auth(shop.api_key))
    assert answer.status_code == 200
    assert answer.get_json() == {"click_retention_days": DEFAULT_DAYS, "cookieless": False}


def test_a_change_is_kept_audited_and_partial_changes_keep_the_rest(client: Any) -> None:
    shop = make_merchant()
    answer = client.put(URL, json={"click_retention_days": 90, "cookieless": True},
                        headers=auth(shop.api_key))
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json() == {"click_retention_days": 90, "cookieless": True}
    answer = client.put(URL, json={"cookieless": False}, headers=auth(shop.api_key))
    assert answer.get_json() == {"click_retention_days": 90, "cookieless": False}
    assert client.get(URL, headers=auth(shop.api_key)).get_json() == answer.get_json()
    events = db.session.scalars(select(AuditEvent).where(
        AuditEvent.merchant_id == shop.merchant.id,
        AuditEvent.action == "privacy_settings_changed")).all()
    assert len(events) == 2


@pytest.mark.parametrize("body", [{"click_retention_days": 29}, {"click_retention_days": 1096},
                                  {"click_retention_days": "90"}, {"click_retention_days": 90.5},
                                  {"cookieless": "maybe"}])
def test_out_of_bounds_or_malformed_values_change_nothing(client: Any, body: dict[str, Any]) -> None:
    shop = make_merchant()
    answer = client.put(URL, json=body, headers=auth(shop.api_key))
    assert 400 <= answer.status_code < 500
    assert answer.get_json()["error"]["code"]
    assert client.get(URL, headers=auth(shop.api_key)).get_json()["click_retention_days"] == DEFAULT_DAYS


def test_a_merchant_changes_only_its_own_settings(client: Any) -> None:
    mine, theirs = make_merchant(), make_merchant()
    client.put(URL, json={"click_retention_days": 30}, headers=auth(mine.api_key))
    assert client.get(URL, headers=auth(theirs.api_key)).get_json()["click_retention_days"] == DEFAULT_DAYS


def test_cookieless_set_through_the_api_applies_to_the_next_redirect(client: Any) -> None:
    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id)
    code = db.session.get(Link, make_click_row(offer, partner.id).link_id).code
    assert "pn_vid" in (client.get(f"/r/{code}", headers={"User-Agent": UA}).headers.get("Set-Cookie") or "")
    assert client.put(URL, json={"cookieless": True}, headers=auth(shop.api_key)).status_code == 200
    answer = client.get(f"/r/{code}", headers={"User-Agent": UA})
    assert answer.status_code == 302 and "click_id=" in answer.headers["Location"]
    assert "Set-Cookie" not in answer.headers

"""Landing-page split tests: refusals in the error shape, sticky deterministic choice, ending."""

import pytest

from partnernet.creatives.services import pick_variant, variant_location
from tests.factories import auth, make_merchant, make_offer


@pytest.fixture
def shop(app):
    m = make_merchant()
    return m, make_offer(m.merchant.id)


def put(client, shop, variants):
    m, offer = shop
    return client.put(f"/api/v1/offers/{offer.id}/variants", json={"variants": variants},
                      headers=auth(m.api_key))


@pytest.mark.parametrize(("variants", "field"), [
    ([{"name": "A", "url": "https://shop.example/a", "weight": 0},
      {"name": "B", "url": "https://shop.example/b", "weight": 1}], "0.weight"),
    ([{"name": "A", "url": "https://shop.example/a", "weight": -2},
      {"name": "B", "url": "https://shop.example/b", "weight": 1}], "0.weight"),
    ([{"name": "A", "url": "https://shop.example/a", "weight": 1.5},
      {"name": "B", "url": "https://shop.example/b", "weight": 1}], "0.weight"),
    ([{"name": "A", "url": "https://shop.example/a", "weight": 1},
      {"name": "B", "url": "https://evil.example.net/b", "weight": 1}], "1.url"),
    ([{"name": "A", "url": "javascript:alert(1)", "weight": 1},
      {"name": "B", "url": "https://shop.example/b", "weight": 1}], "0.url"),
    ([{"name": "A", "url": "https://shop.example/a", "weight": 1}], "variants"),
])
def test_bad_variants_are_refused(client, shop, variants, field):
    r = put(client, shop, variants)
    assert r.status_code == 422
    error = r.get_json()["error"]
    assert error["code"] == "invalid_variants" and field in error["details"]


def test_subdomain_of_the_landing_host_is_allowed_and_test_can_end(client, shop):
    m, offer = shop
    r = put(client, shop, [{"name": "A", "url": "https://shop.example/a", "weight": 1},
                           {"name": "B", "url": "https://www.shop.example/b?v=2", "weight": 3}])
    assert r.status_code == 201, r.get_json()
    a, b = r.get_json()
    report = client.get(f"/api/v1/offers/{offer.id}/variants", headers=auth(m.api_key)).get_json()
    assert report["verdict"] == "not enough data yet" and len(report["variants"]) == 2
    ended = client.post(f"/api/v1/offers/{offer.id}/variants/end", json={"winner_id": b["id"]},
                        headers=auth(m.api_key))
    assert ended.status_code == 200 and ended.get_json()["is_winner"]
    got = client.get(f"/api/v1/offers/{offer.id}", headers=auth(m.api_key)).get_json()
    assert got["landing_url"] == "https://www.shop.example/b?v=2"
    other = make_merchant()
    assert client.get(f"/api/v1/offers/{offer.id}/variants", headers=auth(other.api_key)).status_code == 404


def test_choice_is_sticky_per_visitor_and_follows_weights():
    variants = ((1, 1, "https://shop.example/a"), (2, 3, "https://shop.example/b"))
    assert all(pick_variant(variants, "visitor-xyz", 9) == pick_variant(variants, "visitor-xyz", 9)
               for _ in range(5))
    chosen = [pick_variant(variants, f"visitor-{i}", 9)[0] for i in range(4000)]
    share_b = chosen.count(2) / len(chosen)
    assert 0.70 < share_b < 0.80  # weight 3 of 4


def test_variant_location_keeps_the_tracking_query():
    loc = variant_location("https://shop.example/landing?src=aff&utm_source=x&click_id=abc",
                           "https://www.shop.example/b?v=2")
    assert loc == "https://www.shop.example/b?v=2&src=aff&utm_source=x&click_id=abc"

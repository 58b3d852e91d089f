"""The links and coupons API: creation, membership rule, tenancy, codes, 409 on taken coupons."""

import pytest

from tests.factories import auth, make_merchant, make_offer, make_partner


@pytest.fixture
def shop(app):
    return make_merchant(name="Shop A")


@pytest.fixture
def other_shop(app):
    return make_merchant(name="Shop B")


@pytest.fixture
def offer(shop):
    return make_offer(shop.merchant.id)


@pytest.fixture
def partner(shop):
    return make_partner(shop.merchant.id)


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code


def test_create_link_gives_a_random_code_and_full_url(client, shop, offer, partner):
    body = {"offer_id": offer.id, "partner_id": partner.id, "sub1": "yt", "utm_source": "youtube"}
    made = [client.post("/api/v1/links", json=body, headers=auth(shop.api_key)) for _ in range(3)]
    assert all(r.status_code == 201 for r in made), made[0].get_json()
    links = [r.get_json() for r in made]
    codes = {link["code"] for link in links}
    assert len(codes) == 3
    for link in links:
        assert len(link["code"]) == 8 and not link["code"].isdigit()
        assert link["url"] == f"http://partnernet.test/r/{link['code']}"
        assert link["sub1"] == "yt" and link["utm_source"] == "youtube" and link["status"] == "active"
    listed = client.get("/api/v1/links", headers=auth(shop.api_key)).get_json()
    assert listed["total"] == 3 and [i["id"] for i in listed["items"]] == sorted(
        (link["id"] for link in links), reverse=True)


def test_partner_outside_the_program_gets_no_link(client, shop, other_shop, offer):
    stranger = make_partner(other_shop.merchant.id)
    r = client.post("/api/v1/links", json={"offer_id": offer.id, "partner_id": stranger.id},
                    headers=auth(shop.api_key))
    assert_error(r, 404, "partner_not_found")


@pytest.mark.parametrize("status", ["pending", "rejected"])
def test_unapproved_partner_gets_no_link(client, shop, offer, status):
    partner = make_partner(shop.merchant.id, status=status)
    r = client.post("/api/v1/links", json={"offer_id": offer.id, "partner_id": partner.id},
                    headers=auth(shop.api_key))
    assert_error(r, 422, "partner_not_approved")


def test_offer_needing_approval_refuses_program_only_partner(client, shop, partner):
    offer = make_offer(shop.merchant.id, requires_approval=True)
    r = client.post("/api/v1/links", json={"offer_id": offer.id, "partner_id": partner.id},
                    headers=auth(shop.api_key))
    assert_error(r, 422, "partner_not_approved")


def test_other_merchants_offer_and_link_are_404(client, shop, other_shop, offer, partner):
    link = client.post("/api/v1/links", json={"offer_id": offer.id, "partner_id": partner.id},
                       headers=auth(shop.api_key)).get_json()
    their_offer = make_offer(other_shop.merchant.id)
    r = client.post("/api/v1/links", json={"offer_id": their_offer.id, "partner_id": partner.id},
                    headers=auth(shop.api_key))
    assert_error(r, 404, "offer_not_found")
    assert_error(client.get(f"/api/v1/links/{link['id']}", headers=auth(other_shop.api_key)),
                 404, "link_not_found")
    assert_error(client.post(f"/api/v1/links/{link['id']}/disable", headers=auth(other_shop.api_key)),
                 404, "link_not_found")
    assert client.get("/api/v1/links", headers=auth(other_shop.api_key)).get_json()["total"] == 0


def test_disable_and_enable_link(client, shop, offer, partner):
    link = client.post("/api/v1/links", json={"offer_id": offer.id, "partner_id": partner.id},
                       headers=auth(shop.api_key)).get_json()
    assert client.get(f"/r/{link['code']}").status_code == 302
    r = client.post(f"/api/v1/links/{link['id']}/disable", headers=auth(shop.api_key))
    assert r.status_code == 200 and r.get_json()["status"] == "disabled"
    assert client.get(f"/r/{link['code']}").status_code == 404
    r = client.post(f"/api/v1/links/{link['id']}/enable", headers=auth(shop.api_key))
    assert r.get_json()["status"] == "active"
    assert client.get(f"/r/{link['code']}").status_code == 302


@pytest.mark.parametrize("body", [
    {}, {"offer_id": "x", "partner_id": 1}, {"offer_id": 1},
    {"offer_id": 1, "partner_id": 1, "sub1": "x" * 256},
])
def test_malformed_link_request_is_400(client, shop, body):
    assert_error(client.post("/api/v1/links", json=body, headers=auth(shop.api_key)), 400,
                 "validation_error")


def test_coupon_codes_are_unique_per_merchant_case_insensitively(client, shop, other_shop, offer,
                                                                 partner):
    r = client.post("/api/v1/coupons", json={"offer_id": offer.id, "partner_id": partner.id,
                                             "code": "Spring10"}, headers=auth(shop.api_key))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["code"] == "Spring10"
    again = client.post("/api/v1/coupons", json={"offer_id": offer.id, "partner_id": partner.id,
                                                 "code": "SPRING10"}, headers=auth(shop.api_key))
    assert_error(again, 409, "coupon_taken")
    # Another program may use the same code.
    their_offer = make_offer(other_shop.merchant.id)
    their_partner = make_partner(other_shop.merchant.id)
    r = client.post("/api/v1/coupons", json={"offer_id": their_offer.id, "partner_id": their_partner.id,
                                             "code": "spring10"}, headers=auth(other_shop.api_key))
    assert r.status_code == 201
    listed = client.get("/api/v1/coupons", headers=auth(shop.api_key)).get_json()
    assert [c["code"] for c in listed["items"]] == ["Spring10"]


def test_resolve_coupon_ignores_case_and_disabled(client, shop, offer, partner):
    from partnernet.links.services import resolve_coupon

    made = client.post("/api/v1/coupons", json={"offer_id": offer.id, "partner_id": partner.id,
                                                "code": "Summer-5"}, headers=auth(shop.api_key))
    coupon_id = made.get_json()["id"]
    assert resolve_coupon(shop.merchant.id, "summer-5").id == coupon_id
    assert resolve_coupon(shop.merchant.id + 1000, "summer-5") is None
    client.post(f"/api/v1/coupons/{coupon_id}/disable", headers=auth(shop.api_key))
    assert resolve_coupon(shop.merchant.id, "SUMMER-5") is None


@pytest.mark.parametrize("code", ["", "a", "bad code", "x" * 65, "<script>"])
def test_bad_coupon_code_is_400(client, shop, offer, partner, code):
    r = client.post("/api/v1/coupons", json={"offer_id": offer.id, "partner_id": partner.id,
                                             "code": code}, headers=auth(shop.api_key))
    assert_error(r, 400, "validation_error")


def test_unapproved_partner_gets_no_coupon(client, shop, offer):
    partner = make_partner(shop.merchant.id, status="pending")
    r = client.post("/api/v1/coupons", json={"offer_id": offer.id, "partner_id": partner.id,
                                             "code": "NOPE10"}, headers=auth(shop.api_key))
    assert_error(r, 422, "partner_not_approved")

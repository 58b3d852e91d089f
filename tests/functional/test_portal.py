"""The partner portal through the test client: sign-up, approval, link builder, own data only."""

from __future__ import annotations

from typing import Any

from flask import g
from sqlalchemy import select

from partnernet.extensions import db
from partnernet.links.models import Link
from partnernet.offers.models import Membership
from tests.factories import make_merchant, make_offer, make_partner

PASSWORD = "correct horse battery"


def visitor(app: Any) -> Any:
    g.pop("_login_user", None)
    return app.test_client()


def sign_up(app: Any, merchant_id: int, email: str = "creator@insta.example") -> Any:
    client = visitor(app)
    answer = client.post(f"/portal/join/{merchant_id}", data={
        "name": "Cora Creator", "email": email, "password": PASSWORD, "confirm": PASSWORD,
        "channel_type": "influencer"})
    return client, answer


def test_sign_up_is_pending_until_the_merchant_approves(app: Any) -> None:
    shop = make_merchant("Acme", password=PASSWORD)
    offer = make_offer(shop.merchant.id, name="Acme sale")
    client, answer = sign_up(app, shop.merchant.id)
    assert answer.status_code == 302 and answer.headers["Location"] == "/portal/"
    page = client.get("/portal/").get_data(as_text=True)
    assert "pending" in page and "waiting for the merchant" in page
    assert "No offer to promote yet" in client.get("/portal/links").get_data(as_text=True)
    refused = client.post("/portal/links", data={"offer": str(offer.id)})
    assert refused.status_code == 400
    assert db.session.scalar(select(Link)) is None

    membership = db.session.scalar(select(Membership))
    from partnernet.accounts.services import update_partner

    update_partner(shop.merchant.id, membership.partner_id, {"status": "approved"})
    assert "Acme sale" in client.get("/portal/offers").get_data(as_text=True)
    built = client.post("/portal/links", data={"offer": str(offer.id), "sub1": "story-42",
                                               "utm_source": "instagram"})
    assert built.status_code == 302
    link = db.session.scalar(select(Link))
    assert (link.partner_id, link.offer_id, link.sub1, link.utm_source) == \
        (membership.partner_id, offer.id, "story-42", "instagram")
    listing = client.get(built.headers["Location"]).get_data(as_text=True)
    assert f"http://partnernet.test/r/{link.code}" in listing


def test_sign_up_errors_keep_what_was_typed_and_duplicates_are_refused(app: Any) -> None:
    shop = make_merchant("Acme")
    client = visitor(app)
    bad = client.post(f"/portal/join/{shop.merchant.id}", data={
        "name": "Kept", "email": "not-an-email", "password": "short", "confirm": "other",
        "channel_type": "influencer"})
    assert bad.status_code == 400
    page = bad.get_data(as_text=True)
    assert 'value="Kept"' in page and 'value="not-an-email"' in page
    assert 'id="email-err"' in page and 'id="password-err"' in page and 'id="confirm-err"' in page
    sign_up(app, shop.merchant.id)
    _, again = sign_up(app, shop.merchant.id)
    assert again.status_code == 409 and "log in, then apply" in again.get_data(as_text=True)
    assert visitor(app).get("/portal/join/999999").status_code == 404


def test_a_partner_applies_to_a_second_program_from_the_portal(app: Any) -> None:
    first, second = make_merchant("First"), make_merchant("Second")
    client, _ = sign_up(app, first.merchant.id)
    assert "Second" in client.get("/portal/").get_data(as_text=True)
    assert client.post(f"/portal/join/{second.merchant.id}").status_code == 302
    statuses = db.session.execute(select(Membership.merchant_id, Membership.status)).all()
    assert sorted(statuses) == [(first.merchant.id, "pending"), (second.merchant.id, "pending")]


def test_partner_sees_only_its_own_links_and_never_the_admin(app: Any) -> None:
    shop = make_merchant("Acme")
    offer = make_offer(shop.merchant.id)
    me = make_partner(shop.merchant.id, email="me@p.example", password=PASSWORD)
    other = make_partner(shop.merchant.id, email="other@p.example")
    from partnernet.links.services import create_link

    mine = create_link(shop.merchant.id, {"offer_id": offer.id, "partner_id": me.id})
    theirs = create_link(shop.merchant.id, {"offer_id": offer.id, "partner_id": other.id})
    client = visitor(app)
    client.post("/login", data={"email": "me@p.example", "password": PASSWORD})
    page = client.get("/portal/links").get_data(as_text=True)
    assert mine.code in page and theirs.code not in page
    assert client.get("/admin/").headers["Location"].endswith("/portal/")
    for path in ("/portal/", "/portal/offers", "/portal/commissions", "/portal/payouts", "/portal/settings",
                 "/portal/reports", "/portal/reports?group_by=offer&format=csv"):
        assert client.get(path).status_code == 200, path


def test_merchant_users_are_sent_from_the_portal_to_the_admin(app: Any) -> None:
    shop = make_merchant("Acme", password=PASSWORD)
    client = visitor(app)
    client.post("/login", data={"email": shop.owner.email, "password": PASSWORD})
    assert client.get("/portal/").headers["Location"].endswith("/admin/")
    assert client.get(f"/portal/join/{shop.merchant.id}").status_code == 403


def test_sign_up_cannot_take_over_an_existing_partner_account(app: Any) -> None:
    first, second = make_merchant("First"), make_merchant("Second")
    victim = make_partner(first.merchant.id, email="victim@p.example", password=PASSWORD)
    client, answer = sign_up(app, second.merchant.id, email="victim@p.example")
    assert answer.status_code == 409
    assert client.get("/portal/").status_code == 302  # not logged in as the victim
    assert db.session.scalars(select(Membership.merchant_id).where(
        Membership.partner_id == victim.id)).all() == [first.merchant.id]


def test_payouts_page_without_stripe_offers_no_connect_button(app: Any) -> None:
    shop = make_merchant("Acme")
    make_partner(shop.merchant.id, email="me@p.example", password=PASSWORD)
    client = visitor(app)
    client.post("/login", data={"email": "me@p.example", "password": PASSWORD})
    page = client.get("/portal/payouts").get_data(as_text=True)
    assert "By bank transfer" in page and "Connect payouts" not in page
    assert client.get("/portal/payouts/connect").headers["Location"].endswith("/portal/payouts")


def test_postback_url_send_test_delivery_log_and_api_keys(app: Any) -> None:
    shop = make_merchant("Acme")
    me = make_partner(shop.merchant.id, email="me@p.example", password=PASSWORD)
    client = visitor(app)
    client.post("/login", data={"email": "me@p.example", "password": PASSWORD})
    bad = client.post("/portal/settings", data={"action": "postback", "postback_url": "javascript:alert(1)"})
    assert bad.status_code == 400
    assert 'id="postback_url-err"' in bad.get_data(as_text=True)
    assert 'value="javascript:alert(1)"' in bad.get_data(as_text=True)
    template = "http://127.0.0.1:9/pb?cid={click_id}&c={commission}"
    assert client.post("/portal/settings", data={"action": "postback",
                                                  "postback_url": template}).status_code == 302
    db.session.refresh(me)
    assert me.postback_url == template
    client.post("/portal/settings", data={"action": "test"})  # nothing listens on port 9
    page = client.get("/portal/settings").get_data(as_text=True)
    assert "Test postback: failed" in page and "http://127.0.0.1:9/pb?cid=" in page

    created = client.post("/portal/settings", data={"action": "new_key"}).get_data(as_text=True)
    key = created.split('<code class="secret">')[1].split("<")[0]
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/reports", headers=headers).status_code == 200
    from partnernet.accounts.models import ApiKey

    row = db.session.scalar(select(ApiKey).where(ApiKey.partner_id == me.id))
    merchant_key = db.session.scalar(select(ApiKey).where(ApiKey.merchant_id == shop.merchant.id))
    assert client.post("/portal/settings", data={"action": "revoke",
                                                 "key_id": merchant_key.id}).status_code == 404
    client.post("/portal/settings", data={"action": "revoke", "key_id": row.id})
    assert client.get("/api/v1/reports", headers=headers).status_code == 401


def test_link_qr_code_is_the_partners_own(app: Any) -> None:
    shop = make_merchant("Acme")
    offer = make_offer(shop.merchant.id)
    me = make_partner(shop.merchant.id, email="me@p.example", password=PASSWORD)
    other = make_partner(shop.merchant.id, email="other@p.example")
    from partnernet.links.services import create_link

    mine = create_link(shop.merchant.id, {"offer_id": offer.id, "partner_id": me.id})
    theirs = create_link(shop.merchant.id, {"offer_id": offer.id, "partner_id": other.id})
    client = visitor(app)
    client.post("/login", data={"email": "me@p.example", "password": PASSWORD})
    qr = client.get(f"/portal/links/{mine.id}/qr.svg")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml"
    assert qr.get_data(as_text=True).startswith("<svg")
    import segno

    assert segno.make(f"http://partnernet.test/r/{mine.code}", error="m").svg_inline(
        scale=6, border=2, svgclass="qr", lineclass=None).split("<path")[1] in qr.get_data(as_text=True)
    assert client.get(f"/portal/links/{theirs.id}/qr.svg").status_code == 404


def test_portal_lists_page_without_n_plus_1(app: Any) -> None:
    from sqlalchemy import event

    from partnernet.links.services import create_link
    from tests.factories import make_click_row

    shop = make_merchant("Acme")
    offers = [make_offer(shop.merchant.id, name=f"Offer {i}") for i in range(5)]
    me = make_partner(shop.merchant.id, email="me@p.example", password=PASSWORD)
    for i in range(40):
        create_link(shop.merchant.id, {"offer_id": offers[i % 5].id, "partner_id": me.id, "sub1": f"s{i}"})
    from flask import current_app

    for i in range(30):
        click = make_click_row(offers[i % 5], me.id)
        current_app.test_client().post("/postback", data={
            "token": shop.postback_token, "click_id": click.id, "order_id": f"O-{i}", "amount": "20.00"})
    client = visitor(app)
    client.post("/login", data={"email": "me@p.example", "password": PASSWORD})
    counts = {}
    for path in ("/portal/links", "/portal/commissions"):
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            assert client.get(path).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        counts[path] = len(statements)
    # 25 rows a page: one query per row would be 25+.
    assert max(counts.values()) <= 12, counts

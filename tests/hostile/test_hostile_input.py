"""Hostile input: fuzzed postbacks and redirects, oversized bodies, deep JSON, wrong content
types, unicode everywhere, and injection strings that must come back escaped in the panels."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask import g
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from partnernet.extensions import db
from tests.factories import make_click_row, make_merchant, make_offer, make_partner

PASSWORD = "correct horse battery"
FUZZ = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)
POSTBACK_FIELDS = ("token", "click_id", "order_id", "amount", "currency", "status", "event", "coupon",
                   "customer_email", "signature", "ts", "sub1")
INJECTIONS = (
    "<script>alert('pn')</script>",
    "\"><img src=x onerror=alert(1)>",
    "'; DROP TABLE partners; --",
    "' OR '1'='1",
    "{{7*7}}",
    "Zoë 🚀 ﷽ \u202e",
)


def record(name: str, figures: dict[str, Any]) -> None:
    """Hand figures to scripts/reliability_report.py when it runs the suite."""
    stats_file = os.environ.get("PARTNERNET_RELIABILITY_STATS")
    if stats_file:
        with Path(stats_file).open("a", encoding="utf-8") as out:
            out.write(json.dumps({"suite": name, **figures}) + "\n")


def error_shape(answer: Any) -> dict[str, Any]:
    body = answer.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, answer.get_data(as_text=True)[:200]
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return body["error"]


@pytest.fixture
def shop(app: Any) -> Any:
    new = make_merchant("Fuzz Shop", password=PASSWORD)
    offer = make_offer(new.merchant.id)
    partner = make_partner(new.merchant.id)
    click = make_click_row(offer, partner.id)
    return {"new": new, "offer": offer, "partner": partner, "click": click}


def test_fuzzed_postbacks_never_500_and_never_half_write(app: Any, shop: Any) -> None:
    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion

    client = app.test_client()
    tried = 0

    @FUZZ
    @given(params=st.dictionaries(st.sampled_from(POSTBACK_FIELDS), TEXT, max_size=8),
           valid_token=st.booleans(), method=st.sampled_from(["GET", "POST"]))
    def run(params: dict[str, str], valid_token: bool, method: str) -> None:
        nonlocal tried
        tried += 1
        if valid_token:
            params = {**params, "token": shop["new"].postback_token, "click_id": shop["click"].id}
        if method == "GET":
            answer = client.get("/postback", query_string=params)
        else:
            answer = client.post("/postback", data=params)
        assert answer.status_code < 500, (params, answer.get_data(as_text=True)[:300])
        if answer.status_code >= 400:
            error_shape(answer)
        # Every conversion has its commission: nothing half-written.
        db.session.expire_all()
        conversions = db.session.scalar(select(func.count()).select_from(Conversion))
        commissions = db.session.scalar(select(func.count()).select_from(Commission))
        assert commissions <= conversions

    run()
    assert tried >= 60
    record("hypothesis-postback", {"target": "GET/POST /postback", "inputs": tried, "failures": 0})


def test_fuzzed_redirect_codes_answer_404_or_302(app: Any, shop: Any) -> None:
    client = app.test_client()
    real = shop["click"].link.code if hasattr(shop["click"], "link") else None
    tried = 0

    @FUZZ
    @given(code=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",),
                                      exclude_characters="/?#%"), min_size=1, max_size=300),
           query=st.dictionaries(TEXT, TEXT, max_size=4))
    def run(code: str, query: dict[str, str]) -> None:
        nonlocal tried
        tried += 1
        answer = client.get(f"/r/{code}", query_string=query)
        assert answer.status_code in (302, 404), (code, answer.status_code)
        if answer.status_code == 404:
            error_shape(answer) if answer.is_json else None
        else:
            assert answer.headers["Location"].startswith(("http://", "https://"))

    run()
    if real:
        assert client.get(f"/r/{real}").status_code == 302
    record("hypothesis-redirect", {"target": "GET /r/<code>", "inputs": tried, "failures": 0})


def test_oversized_body_is_413_in_the_error_shape(app: Any, shop: Any) -> None:
    client = app.test_client()
    big = b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    headers = {"Authorization": f"Bearer {shop['new'].api_key}", "Accept": "application/json"}
    for path in ("/api/v1/offers", "/postback", "/webhooks/stripe"):
        answer = client.post(path, data=big, headers={**headers, "Content-Type": "application/json"})
        assert answer.status_code == 413, (path, answer.status_code)
        assert error_shape(answer)["code"] == "payload_too_large"


def test_deep_json_and_wrong_content_types_are_400_not_500(app: Any, shop: Any) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {shop['new'].api_key}"}
    deep = "[" * 50_000 + "]" * 50_000
    for body, ctype in ((deep, "application/json"), ('{"name": ', "application/json"),
                        ("name=x", "application/x-www-form-urlencoded"), ("<x/>", "text/xml"),
                        ("\xff\xfe", "application/json"), ("null", "application/json"),
                        ("[]", "application/json"), ('"x"', "application/json")):
        answer = client.post("/api/v1/offers", data=body, headers={**headers, "Content-Type": ctype})
        assert 400 <= answer.status_code < 500, (ctype, body[:20], answer.status_code)
        error_shape(answer)
        postback = client.post("/postback", data=body, headers={"Content-Type": ctype})
        assert 400 <= postback.status_code < 500, (ctype, body[:20], postback.status_code)


@pytest.mark.parametrize("value", INJECTIONS)
def test_unicode_and_injection_strings_in_every_text_field_round_trip(app: Any, shop: Any,
                                                                      value: str) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {shop['new'].api_key}"}
    offer = client.post("/api/v1/offers", headers=headers, json={
        "name": value, "landing_url": "https://shop.example/l",
        "plans": [{"event": "sale", "type": "cps", "percent": "10"}]})
    assert offer.status_code == 201, offer.get_json()
    assert offer.get_json()["name"] == value
    partner = client.post("/api/v1/partners", headers=headers, json={
        "name": value, "email": "inj@creator.example"})
    assert partner.status_code in (201, 400), partner.get_json()
    if partner.status_code == 400:
        error_shape(partner)
    # Partners tables still there; the value was data, never SQL.
    from partnernet.accounts.models import Partner

    assert db.session.scalar(select(func.count()).select_from(Partner)) >= 1


def test_injection_strings_come_back_escaped_in_the_panels(app: Any, shop: Any) -> None:
    payload = "<script>alert('pn')</script>"
    make_partner(shop["new"].merchant.id, name=payload, email="xss@creator.example", password=PASSWORD)
    make_offer(shop["new"].merchant.id, name=payload)
    g.pop("_login_user", None)
    merchant = app.test_client()
    assert merchant.post("/login", data={"email": shop["new"].owner.email,
                                         "password": PASSWORD}).status_code == 302
    for page in ("/admin/partners", "/admin/offers", "/admin/"):
        body = merchant.get(page).get_data(as_text=True)
        assert payload not in body, page
    assert html.escape(payload) in merchant.get("/admin/partners").get_data(as_text=True) or \
        "&lt;script&gt;" in merchant.get("/admin/partners").get_data(as_text=True)
    g.pop("_login_user", None)
    partner = app.test_client()
    assert partner.post("/login", data={"email": "xss@creator.example",
                                        "password": PASSWORD}).status_code == 302
    for page in ("/portal/", "/portal/settings", "/portal/links"):
        body = partner.get(page).get_data(as_text=True)
        assert payload not in body, page


def test_json_api_answers_are_json_even_for_html_strings(app: Any, shop: Any) -> None:
    client = app.test_client()
    headers = {"Authorization": f"Bearer {shop['new'].api_key}"}
    answer = client.get("/api/v1/offers", headers=headers, query_string={"q": "<b>x</b>"})
    assert answer.mimetype == "application/json"
    json.loads(answer.get_data(as_text=True))

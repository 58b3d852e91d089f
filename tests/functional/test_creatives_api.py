"""Creatives library through the API: uploads checked, refusals in the error shape, tenancy."""

import io
import struct
import zlib

import pytest
from PIL import Image

from tests.factories import auth, make_merchant, make_offer


def png_bytes(w=2, h=2, fmt="PNG"):
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(buf, fmt)
    return buf.getvalue()


def bomb_png(w=100_000, h=100_000):
    """A tiny PNG whose header declares w×h pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
            + chunk(b"IEND", b""))


@pytest.fixture
def shop(app, tmp_path):
    app.config["CREATIVES_DIR"] = str(tmp_path / "creatives")
    m = make_merchant()
    return m, make_offer(m.merchant.id)


def upload(client, shop, data, name="banner.png", **fields):
    m, offer = shop
    form = {"kind": "banner", "name": "Summer banner", **fields, "image": (io.BytesIO(data), name)}
    return client.post(f"/api/v1/offers/{offer.id}/creatives", data=form,
                       content_type="multipart/form-data", headers=auth(m.api_key))


def stored(tmp_path):
    d = tmp_path / "creatives"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_banner_upload_records_type_and_size_and_serves_the_image(client, shop, tmp_path, fmt):
    data = png_bytes(300, 250, fmt)
    r = upload(client, shop, data)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["image_width"], body["image_height"]) == (300, 250)
    assert body["image_type"] == fmt.lower() and body["image_bytes"] == len(data)
    assert len(stored(tmp_path)) == 1
    img = client.get(f"/creatives/{body['id']}/image")
    assert img.status_code == 200 and img.data == data and img.mimetype == f"image/{fmt.lower()}"


@pytest.mark.parametrize(("data", "status", "code"), [
    (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
     422, "invalid_image"),
    (b"<svg onload=alert(1)></svg>", 422, "invalid_image"),
    (b"GIF89a but not really a gif at all", 422, "invalid_image"),
    (b"MZ\x90\x00 an executable", 422, "invalid_image"),
    (b"", 422, "invalid_image"),
    (bomb_png(), 413, "image_too_large"),
    (bomb_png(5000, 10), 413, "image_too_large"),
])
def test_bad_uploads_are_refused_and_nothing_is_stored(client, shop, tmp_path, data, status, code):
    r = upload(client, shop, data)
    assert r.status_code == status, r.get_json()
    body = r.get_json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert stored(tmp_path) == []
    m, offer = shop
    listed = client.get(f"/api/v1/offers/{offer.id}/creatives", headers=auth(m.api_key)).get_json()
    assert listed["total"] == 0


def test_oversized_upload_is_refused(client, shop, tmp_path):
    from werkzeug.test import EnvironBuilder

    m, offer = shop
    big = png_bytes(2, 2) + b"\0" * (600 * 1024)
    # Bodies this large spool to a temporary file in the test client: close it ourselves.
    builder = EnvironBuilder(path=f"/api/v1/offers/{offer.id}/creatives", method="POST",
                             headers=auth(m.api_key), content_type="multipart/form-data",
                             data={"kind": "banner", "name": "big", "image": (io.BytesIO(big), "b.png")})
    environ = builder.get_environ()
    try:
        r = client.open(environ)
    finally:
        environ["wsgi.input"].close()
        builder.close()
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "image_too_large"
    assert stored(tmp_path) == []


def test_text_creatives_need_a_body_and_list_newest_first(client, shop):
    m, offer = shop
    url = f"/api/v1/offers/{offer.id}/creatives"
    r = client.post(url, json={"kind": "text_link", "name": "CTA"}, headers=auth(m.api_key))
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "validation_error"
    for name in ("first", "second"):
        assert client.post(url, json={"kind": "social", "name": name, "body": "Use my link!"},
                           headers=auth(m.api_key)).status_code == 201
    r = client.post(url, json={"kind": "video", "name": "x", "body": "y"}, headers=auth(m.api_key))
    assert r.status_code == 400
    items = client.get(url, headers=auth(m.api_key)).get_json()["items"]
    assert [c["name"] for c in items] == ["second", "first"]
    patched = client.patch(f"/api/v1/creatives/{items[0]['id']}", json={"status": "paused"},
                           headers=auth(m.api_key))
    assert patched.get_json()["status"] == "paused"


def test_another_merchants_offer_and_creative_are_404(client, shop):
    m, offer = shop
    other = make_merchant()
    url = f"/api/v1/offers/{offer.id}/creatives"
    email = {"kind": "email", "name": "x", "body": "y"}
    r = client.post(url, json=email, headers=auth(other.api_key))
    assert r.status_code == 404
    mine = client.post(url, json=email, headers=auth(m.api_key)).get_json()
    assert client.get(f"/api/v1/creatives/{mine['id']}", headers=auth(other.api_key)).status_code == 404
    assert client.patch(f"/api/v1/creatives/{mine['id']}", json={"name": "z"},
                        headers=auth(other.api_key)).status_code == 404

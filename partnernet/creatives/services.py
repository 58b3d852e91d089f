"""Creatives library, landing split tests and their reports (use-case entry points commit once)."""

from __future__ import annotations

import hashlib
import io
import secrets
import threading
import time
import warnings
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, current_app
from sqlalchemy import Select, func, select

from partnernet import clock, money
from partnernet.creatives import splittest
from partnernet.creatives.exceptions import (
    CreativeNotFound,
    ImageTooLarge,
    InvalidImage,
    InvalidVariants,
)
from partnernet.creatives.models import Creative, LandingVariant
from partnernet.creatives.storage import get_storage
from partnernet.extensions import db
from partnernet.offers.services import get_offer

#: Below the app-wide MAX_CONTENT_LENGTH (1 MiB), so this clearer refusal is the one seen.
MAX_IMAGE_BYTES = 512 * 1024
MAX_IMAGE_SIDE = 4096
#: Pillow's own bomb guard, set low: a banner never needs more pixels than this.
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE
#: Magic bytes → type. SVG is refused on purpose: it is XML that can carry <script>, event
#: handlers and external references, which run when the banner is opened from our origin;
#: sanitising it safely is a project of its own, and raster banners cover the need.
MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"),
         (b"GIF89a", "gif"))
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP"}


# -- image checks (pure but for Pillow) ---------------------------------------------------

def sniff_type(data: bytes) -> str | None:
    """The image type named by the file's first bytes (never by its name or Content-Type)."""
    for magic, kind in MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def check_image(data: bytes) -> tuple[str, int, int]:
    """(type, width, height) of an accepted banner; raises InvalidImage / ImageTooLarge."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageTooLarge(f"Images may be at most {MAX_IMAGE_BYTES // 1024} KiB.",
                            details={"max_bytes": MAX_IMAGE_BYTES, "bytes": len(data)})
    if not data:
        raise InvalidImage("The file is empty.")
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg")) or b"<svg" in head:
        raise InvalidImage("SVG is not accepted: it can carry scripts. Upload PNG, JPEG, GIF or WebP.",
                           details={"type": "svg"})
    kind = sniff_type(data)
    if kind is None:
        raise InvalidImage("Only PNG, JPEG, GIF and WebP images are accepted.",
                           details={"accepted": sorted(PIL_FORMATS)})
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                fmt = img.format
                if width * height > MAX_IMAGE_PIXELS or max(width, height) > MAX_IMAGE_SIDE:
                    raise ImageTooLarge(
                        f"Images may be at most {MAX_IMAGE_SIDE}×{MAX_IMAGE_SIDE} pixels.",
                        details={"width": width, "height": height, "max_side": MAX_IMAGE_SIDE})
                img.verify()
    except ImageTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge("The image declares too many pixels.", details={"reason": str(exc)}) from exc
    except Exception as exc:  # Pillow raises many kinds on broken files
        raise InvalidImage("The image could not be read.", details={"reason": str(exc)[:200]}) from exc
    if fmt != PIL_FORMATS[kind]:
        raise InvalidImage("The file's content does not match its type.", details={"type": kind})
    return kind, width, height


# -- creatives ----------------------------------------------------------------------------

def creatives_query(merchant_id: int, offer_id: int, status: str | None = None) -> Select[Creative]:
    """The offer's creatives, newest first (the offer must be the merchant's)."""
    get_offer(merchant_id, offer_id)
    stmt = select(Creative).where(Creative.merchant_id == merchant_id, Creative.offer_id == offer_id)
    if status:
        stmt = stmt.where(Creative.status == status)
    return stmt.order_by(Creative.id.desc())


def get_creative(merchant_id: int, creative_id: int) -> Creative:
    """One of the merchant's creatives, or 404."""
    creative = db.session.get(Creative, creative_id)
    if creative is None or creative.merchant_id != merchant_id:
        raise CreativeNotFound()
    return creative


def create_creative(merchant_id: int, offer_id: int, data: dict[str, Any],
                    image: bytes | None = None) -> Creative:
    """Add a creative to the offer; a banner's image is checked before anything is stored."""
    offer = get_offer(merchant_id, offer_id)
    kind = data["kind"]
    fields: dict[str, Any] = {}
    if kind == "banner":
        if image is None:
            raise InvalidImage("A banner needs an image file (multipart field `image`).",
                               details={"field": "image"})
        image_type, width, height = check_image(image)
        key = f"{secrets.token_hex(16)}.{image_type}"
        fields = {"image_key": key, "image_type": image_type, "image_width": width,
                  "image_height": height, "image_bytes": len(image)}
    elif not data.get("body"):
        raise InvalidImage("This kind of creative needs a body.", code="validation_error",
                           status_code=400, details={"body": ["Missing data for required field."]})
    creative = Creative(merchant_id=merchant_id, offer_id=offer.id, kind=kind, name=data["name"],
                        body=data.get("body"), status=data.get("status", "active"),
                        starts_at=data.get("starts_at"), ends_at=data.get("ends_at"), **fields)
    db.session.add(creative)
    db.session.flush()
    if image is not None and kind == "banner":
        get_storage().save(creative.image_key or "", image)
    db.session.commit()
    return creative


def update_creative(merchant_id: int, creative_id: int, data: dict[str, Any]) -> Creative:
    """Change name, body, status or dates."""
    creative = get_creative(merchant_id, creative_id)
    for field in ("name", "body", "status", "starts_at", "ends_at"):
        if field in data:
            setattr(creative, field, data[field])
    db.session.commit()
    return creative


def creative_image(creative_id: int) -> tuple[bytes, str] | None:
    """The banner's bytes and MIME type (public: partners embed it), or None."""
    creative = db.session.get(Creative, creative_id)
    if creative is None or creative.image_key is None or creative.status == "archived":
        return None
    data = get_storage().load(creative.image_key)
    if data is None:
        return None
    return data, f"image/{creative.image_type}"


def partner_creatives(partner_id: int, offer_id: int) -> list[Creative]:
    """The active creatives of an offer the partner may see (running now)."""
    now = clock.now()
    rows = db.session.scalars(select(Creative).where(
        Creative.offer_id == offer_id, Creative.status == "active").order_by(Creative.id.desc()))
    return [c for c in rows if (c.starts_at is None or c.starts_at <= now)
            and (c.ends_at is None or c.ends_at > now)]


def md_text(text: str) -> str:
    """Link text safe inside markdown ``[...]``: one line, brackets and backslashes escaped, and
    HTML-escaped (markdown passes raw HTML through: a merchant's text must not become markup)."""
    flat = escape(" ".join(text.split()), quote=False)
    return "".join("\\" + ch if ch in "\\[]" else ch for ch in flat)


def snippets(creative: Creative, link_code: str) -> dict[str, str]:
    """Ready-to-paste HTML and markdown embedding the partner's link (with ``cr``) and pixel."""
    base = current_app.config["BASE_URL"]
    url = f"{base}/r/{link_code}?cr={creative.id}"
    pixel = f"{base}/i/{link_code}/{creative.id}.gif"
    text = escape(creative.body or creative.name)
    if creative.kind == "banner":
        img = f"{base}/creatives/{creative.id}/image"
        html = (f'<a href="{escape(url)}" rel="sponsored"><img src="{escape(img)}" '
                f'width="{creative.image_width}" height="{creative.image_height}" alt="{text}"></a>'
                f'<img src="{escape(pixel)}" width="1" height="1" alt="">')
        markdown = f"[![{md_text(creative.body or creative.name)}]({img})]({url})![]({pixel})"
    else:
        html = (f'<a href="{escape(url)}" rel="sponsored">{text}</a>'
                f'<img src="{escape(pixel)}" width="1" height="1" alt="">')
        markdown = f"[{md_text(creative.body or creative.name)}]({url})![]({pixel})"
    return {"url": url, "pixel": pixel, "html": html, "markdown": markdown}


# -- landing split tests -----------------------------------------------------------------

_TWO_LEVEL_SUFFIXES = {"co.uk", "org.uk", "ac.uk", "com.au", "net.au", "co.nz", "co.jp", "com.br",
                       "co.in", "co.za", "com.mx", "com.tr", "com.cn"}


def registrable_host(host: str) -> str:
    """eTLD+1 by a small built-in suffix list (no network): ``shop.example.co.uk`` → ``example.co.uk``."""
    labels = host.lower().rstrip(".").split(".")
    take = 3 if ".".join(labels[-2:]) in _TWO_LEVEL_SUFFIXES else 2
    return ".".join(labels[-take:])


def validate_variants(landing_url: str, variants: list[dict[str, Any]],
                      allowed_hosts: tuple[str, ...] = ()) -> None:
    """Weights positive integers; URLs http(s) on the offer landing URL's registrable host or
    on a host the merchant allows (its variant-host allowlist, subdomains included)."""
    from partnernet.creatives.settings import host_allowed

    problems: dict[str, Any] = {}
    home = registrable_host(urlsplit(landing_url).hostname or "")
    where = ", ".join((home, *allowed_hosts))
    names = set()
    for i, variant in enumerate(variants):
        weight = variant.get("weight")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight <= 0:
            problems[f"{i}.weight"] = "must be a positive integer"
        parts = urlsplit(variant.get("url") or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems[f"{i}.url"] = "must be an http or https URL"
        elif registrable_host(parts.hostname) != home and not host_allowed(parts.hostname, allowed_hosts):
            problems[f"{i}.url"] = (f"must be on {where}: the offer's domain or a host allowed "
                                    "in the creative settings")
        if variant.get("name") in names:
            problems[f"{i}.name"] = "names must differ"
        names.add(variant.get("name"))
    if len(variants) < 2:
        problems["variants"] = "a split test needs at least two variants"
    if problems:
        raise InvalidVariants(details=problems)


def set_variants(merchant_id: int, offer_id: int, variants: list[dict[str, Any]]) -> list[LandingVariant]:
    """Start (or replace) the offer's split test; previous active variants end."""
    from partnernet.creatives.settings import get_settings

    offer = get_offer(merchant_id, offer_id)
    validate_variants(offer.landing_url, variants, get_settings(merchant_id).variant_hosts)
    for old in db.session.scalars(select(LandingVariant).where(
            LandingVariant.offer_id == offer.id, LandingVariant.status == "active")):
        old.status = "ended"
    rows = [LandingVariant(merchant_id=merchant_id, offer_id=offer.id, name=v["name"], url=v["url"],
                           weight=v["weight"]) for v in variants]
    db.session.add_all(rows)
    db.session.commit()
    forget_variants(offer.id)
    return rows


def end_test(merchant_id: int, offer_id: int, winner_id: int) -> LandingVariant:
    """End the split test keeping the winner: its URL becomes the offer's landing URL."""
    offer = get_offer(merchant_id, offer_id)
    winner = db.session.get(LandingVariant, winner_id)
    if winner is None or winner.offer_id != offer.id or winner.status != "active":
        raise InvalidVariants("The winner must be an active variant of this offer.",
                              code="variant_not_found", status_code=404)
    for v in db.session.scalars(select(LandingVariant).where(
            LandingVariant.offer_id == offer.id, LandingVariant.status == "active")):
        v.status = "ended"
    winner.is_winner = True
    offer.landing_url = winner.url
    db.session.commit()
    forget_variants(offer.id)
    from partnernet.links.models import Link
    from partnernet.links.tracking import forget_link

    for code in db.session.scalars(select(Link.code).where(Link.offer_id == offer.id)):
        forget_link(code)
    return winner


def active_variants(offer_id: int) -> list[LandingVariant]:
    """The offer's running variants, oldest first (the first is the control)."""
    return list(db.session.scalars(select(LandingVariant).where(
        LandingVariant.offer_id == offer_id, LandingVariant.status == "active").order_by(LandingVariant.id)))


# The redirect asks for variants on every click: a per-process cache (10 s) keeps it SQL-free.
_VARIANT_TTL = 10.0
_cache_lock = threading.Lock()


def _variant_cache(app: Flask) -> dict[int, tuple[float, tuple[tuple[int, int, str], ...]]]:
    return app.extensions.setdefault("partnernet_creatives_variants", {})  # type: ignore[no-any-return]


def cached_variants(offer_id: int) -> tuple[tuple[int, int, str], ...]:
    """(id, weight, url) of the offer's active variants; from the process cache when fresh."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    cache = _variant_cache(app)
    entry = cache.get(offer_id)
    if entry is not None and entry[0] > time.monotonic():
        return entry[1]
    rows = tuple((v.id, v.weight, v.url) for v in active_variants(offer_id))
    db.session.rollback()
    with _cache_lock:
        cache[offer_id] = (time.monotonic() + _VARIANT_TTL, rows)
    return rows


def forget_variants(offer_id: int) -> None:
    """Drop this process's cached variants of an offer (others expire within seconds)."""
    _variant_cache(current_app._get_current_object()).pop(offer_id, None)  # type: ignore[attr-defined]


def pick_variant(variants: tuple[tuple[int, int, str], ...], visitor_id: str,
                 offer_id: int) -> tuple[int, str]:
    """Deterministic weighted choice: the same visitor always lands on the same variant."""
    total = sum(w for _, w, _ in variants)
    digest = hashlib.sha256(f"{offer_id}:{visitor_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for variant_id, weight, url in variants:
        if point < weight:
            return variant_id, url
        point -= weight
    raise AssertionError("unreachable")  # pragma: no cover


def variant_location(head_location: str, variant_url: str) -> str:
    """The redirect's location moved to the variant page: the variant's scheme, host and path
    (and its own query first), keeping the tracking query (offer query, UTM, click id)."""
    loc = urlsplit(head_location)
    var = urlsplit(variant_url)
    query = "&".join(q for q in (var.query, loc.query) if q)
    return urlunsplit((var.scheme, var.netloc, var.path or "/", query, var.fragment or loc.fragment))


def choose_landing(offer_id: int, visitor_id: str | None, location: str) -> tuple[str, int | None]:
    """(location, variant id or None) for one click: sticky per visitor, by weight."""
    variants = cached_variants(offer_id)
    if not variants:
        return location, None
    variant_id, url = pick_variant(variants, visitor_id or location, offer_id)
    return variant_location(location, url), variant_id


def variant_report(merchant_id: int, offer_id: int) -> dict[str, Any]:
    """Clicks, conversions, CR with 95% Wilson interval and EPC per variant, and a verdict."""
    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion
    from partnernet.links.models import Click

    offer = get_offer(merchant_id, offer_id)
    variants = list(db.session.scalars(select(LandingVariant).where(
        LandingVariant.offer_id == offer.id).order_by(LandingVariant.id)))
    if not hasattr(Click, "variant_id"):
        counts: dict[int, tuple[int, int, int]] = {}
    else:
        clicks = dict(db.session.execute(select(Click.variant_id, func.count()).where(
            Click.offer_id == offer.id, Click.is_bot.is_(False), Click.variant_id.is_not(None))
            .group_by(Click.variant_id)).all())
        convs = dict(db.session.execute(select(Click.variant_id, func.count(Conversion.id)).join(
            Conversion, Conversion.click_id == Click.id).where(Click.offer_id == offer.id)
            .group_by(Click.variant_id)).all())
        paid = func.coalesce(func.sum(Commission.amount_minor), 0)
        earned = dict(db.session.execute(select(Click.variant_id, paid)
            .join(Conversion, Conversion.click_id == Click.id)
            .join(Commission, Commission.conversion_id == Conversion.id)
            .where(Click.offer_id == offer.id).group_by(Click.variant_id)).all())
        counts = {v.id: (int(clicks.get(v.id, 0)), int(convs.get(v.id, 0)), int(earned.get(v.id, 0)))
                  for v in variants}
    rows: list[dict[str, Any]] = []
    for v in variants:
        n, s, commission = counts.get(v.id, (0, 0, 0))
        low, high = splittest.wilson_interval(s, n)
        rows.append({"id": v.id, "name": v.name, "url": v.url, "weight": v.weight, "status": v.status,
                     "is_winner": v.is_winner, "clicks": n, "conversions": s,
                     "conversion_rate": f"{s / n:.4f}" if n else None,
                     "conversion_rate_low": f"{low:.4f}", "conversion_rate_high": f"{high:.4f}",
                     "commission": money.format_amount(commission, offer.currency),
                     "epc": (money.format_amount(money.prorate(commission, 1, n), offer.currency)
                             if n else None)})
    active = [r for r in rows if r["status"] == "active"]
    text = "not enough data yet"
    if len(active) >= 2:
        control = active[0]
        best = max(active[1:], key=lambda r: (r["conversions"] / r["clicks"]) if r["clicks"] else 0)
        text = splittest.verdict(splittest.Arm(control["name"], control["clicks"], control["conversions"]),
                                 splittest.Arm(best["name"], best["clicks"], best["conversions"])).text
    return {"offer_id": offer.id, "currency": offer.currency, "variants": rows, "verdict": text}


# -- impressions report ------------------------------------------------------------------

def creative_report(merchant_id: int, offer_id: int | None, since: datetime | None,
                    until: datetime | None) -> list[dict[str, Any]]:
    """Impressions, clicks, CTR, commission and CPM by creative (see ``creatives.report``)."""
    from partnernet.creatives.report import creative_stats

    return creative_stats(merchant_id, offer_id, since, until)

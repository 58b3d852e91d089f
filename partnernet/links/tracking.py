"""The redirect's hot path: find the link (in-process LRU → Redis → database), describe
the visit, record the click, build the landing URL.

A cached redirect runs no SQL at all: the link comes from the process's LRU (or
Redis), and the click goes to the Redis buffer in one round trip.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

import crawleruseragents
from flask import Flask, current_app, has_app_context
from sqlalchemy import select

from partnernet import clock, tokens
from partnernet.extensions import app_state, db
from partnernet.links import buffer, invalidation  # noqa: F401 - registers the cache events
from partnernet.links.models import Link
from partnernet.offers.models import Offer

#: Link codes we ever issue: anything else is a 404 without a lookup.
CODE_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
VISITOR_RE = re.compile(r"[A-Za-z0-9_-]{16,64}")
VISITOR_COOKIE = "pn_vid"
VISITOR_COOKIE_MAX_AGE = 365 * 24 * 3600
#: Click ids of the ad networks; their presence on a tracking URL hints at paid search/social.
PAID_ADS_PARAMS = ("gclid", "fbclid", "msclkid", "ttclid", "li_fat_id", "twclid")
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
LOCAL_TTL = 10.0
LOCAL_MISS_TTL = 5.0
LOCAL_MAX = 10_000
REDIS_LINK_TTL = 60


# -- the link target and its caches ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class LinkTarget:
    """What a redirect needs of a link, all of it cached together (LRU and Redis) so a cached
    redirect runs no SQL: ids, default subs, the landing URL around the click id, the offer's
    running split-test variants, the ids of the offer's creatives and the merchant's cookie mode."""

    link_id: int
    merchant_id: int
    offer_id: int
    partner_id: int
    subs: tuple[str | None, ...]
    #: Landing URL up to the click id value (``https://shop/p?x=1&click_id=``).
    head: str
    #: What follows the click id (the landing URL's ``#fragment``, if any).
    tail: str
    #: Active landing variants: (variant id, weight, url, head, tail), control first.
    variants: tuple[tuple[int, int, str, str, str], ...] = ()
    #: Creatives of the offer a ``cr`` parameter may name (others are ignored).
    creative_ids: frozenset[int] = frozenset()
    #: The merchant's cookieless mode: no visitor cookie set or read.
    cookieless: bool = False
    #: The offer attributes to the visitor's first click: buffered clicks are indexed by visitor
    #: (``clicks_for_visitor`` must see them before the flush). Last-click offers never read
    #: that index, so their clicks skip it (a third of the redirect's Redis work).
    first_click: bool = False

    def location(self, click_id: str) -> str:
        """The landing URL carrying this click id."""
        return f"{self.head}{click_id}{self.tail}"

    def landing(self, click_id: str, chooser: str) -> tuple[str, int | None]:
        """(landing URL with the click id, variant id or None): without a split test the
        offer's landing URL; with one, the variant ``chooser`` (the visitor) always gets."""
        if not self.variants:
            return f"{self.head}{click_id}{self.tail}", None
        from partnernet.creatives.services import pick_variant

        variant_id, _ = pick_variant(tuple(v[:3] for v in self.variants), chooser, self.offer_id)
        for vid, _, _, head, tail in self.variants:
            if vid == variant_id:
                return f"{head}{click_id}{tail}", vid
        raise AssertionError("unreachable")  # pragma: no cover

    def dumps(self) -> str:
        return json.dumps([self.link_id, self.merchant_id, self.offer_id, self.partner_id,
                           list(self.subs), self.head, self.tail, [list(v) for v in self.variants],
                           sorted(self.creative_ids), self.cookieless, self.first_click])

    @classmethod
    def loads(cls, raw: bytes | str) -> LinkTarget:
        (link_id, merchant_id, offer_id, partner_id, subs, head, tail, variants, creative_ids,
         cookieless, first_click) = json.loads(raw)
        return cls(link_id, merchant_id, offer_id, partner_id, tuple(subs), head, tail,
                   tuple(tuple(v) for v in variants), frozenset(creative_ids), bool(cookieless),
                   bool(first_click))


def landing_parts(landing_url: str, click_id_param: str, utm: dict[str, str]) -> tuple[str, str]:
    """(head, tail) of the landing URL: its own query kept verbatim, minus any pair that our
    click id or UTM parameters replace, then the UTM pairs, then ``<param>=``."""
    parts = urlsplit(landing_url)
    replaced = {click_id_param, *utm}
    kept = [pair for pair in parts.query.split("&")
            if pair and unquote_plus(pair.partition("=")[0]) not in replaced]
    kept += [f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in utm.items()]
    kept.append(f"{quote(click_id_param, safe='')}=")
    head = urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "&".join(kept), ""))
    tail = f"#{parts.fragment}" if parts.fragment else ""
    return head, tail


#: Stands for the click id while a variant's URL is built around it (never in a real URL).
_CLICK_ID_MARK = "PNCLICKIDMARK7f3a9c"


def target_for(link: Link, offer: Offer, variants: list[tuple[int, int, str]] | None = None,
               creative_ids: frozenset[int] = frozenset(), cookieless: bool = False) -> LinkTarget:
    """The redirect target of a link (no database work): ``variants`` are the offer's active
    landing variants as (id, weight, url), control first."""
    from partnernet.creatives.services import variant_location

    utm = {f: getattr(link, f) for f in UTM_FIELDS if getattr(link, f)}
    head, tail = landing_parts(offer.landing_url, offer.click_id_param or "click_id", utm)
    built = []
    for variant_id, weight, url in variants or ():
        # The same rule as creatives.variant_location, applied once here, not per click.
        v_head, mark, v_tail = variant_location(f"{head}{_CLICK_ID_MARK}{tail}", url).partition(
            _CLICK_ID_MARK)
        if mark:
            built.append((variant_id, weight, url, v_head, v_tail))
    return LinkTarget(link.id, link.merchant_id, link.offer_id, link.partner_id,
                      (link.sub1, link.sub2, link.sub3, link.sub4, link.sub5), head, tail,
                      tuple(built), creative_ids, cookieless,
                      offer.attribution_model == "first_click")


class _LocalCache:
    """A small LRU with per-entry expiry; misses are cached briefly too (404 floods)."""

    def __init__(self) -> None:
        self.items: OrderedDict[str, tuple[float, LinkTarget | None]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, code: str) -> tuple[bool, LinkTarget | None]:
        with self.lock:
            entry = self.items.get(code)
            if entry is None:
                return False, None
            if entry[0] < time.monotonic():
                del self.items[code]
                return False, None
            self.items.move_to_end(code)
            return True, entry[1]

    def put(self, code: str, target: LinkTarget | None) -> None:
        ttl = LOCAL_TTL if target is not None else LOCAL_MISS_TTL
        with self.lock:
            self.items[code] = (time.monotonic() + ttl, target)
            self.items.move_to_end(code)
            while len(self.items) > LOCAL_MAX:
                self.items.popitem(last=False)

    def drop(self, code: str) -> None:
        with self.lock:
            self.items.pop(code, None)


def _local(app: Flask) -> _LocalCache:
    return app_state(app, "partnernet_links", "links", _LocalCache)


def _link_key(code: str) -> str:
    # v3: the entry carries variants, creatives, the cookie mode and the attribution model
    # (older entries are not read).
    return f"{current_app.config['REDIS_KEY_PREFIX']}link3:{code}"


def _load_target(code: str) -> LinkTarget | None:
    from partnernet.accounts.models import Merchant
    from partnernet.creatives.models import Creative, LandingVariant

    row = db.session.execute(select(Link, Offer, Merchant.cookieless)
                             .join(Offer, Offer.id == Link.offer_id)
                             .join(Merchant, Merchant.id == Link.merchant_id)
                             .where(Link.code == code)).first()
    if row is None:
        return None
    link, offer, cookieless = row
    if link.status != "active" or offer.status == "archived":
        return None
    variants = db.session.execute(select(LandingVariant.id, LandingVariant.weight, LandingVariant.url)
                                  .where(LandingVariant.offer_id == offer.id,
                                         LandingVariant.status == "active")
                                  .order_by(LandingVariant.id)).all()
    creatives = db.session.scalars(select(Creative.id).where(
        Creative.offer_id == offer.id, Creative.merchant_id == link.merchant_id,
        Creative.status != "archived"))
    return target_for(link, offer, [(vid, weight, url) for vid, weight, url in variants]
                      if len(variants) >= 2 else None,
                      frozenset(creatives), bool(cookieless))


def cached_link(app: Flask, code: str) -> tuple[bool, LinkTarget | None]:
    """(found, target) from this process's LRU only: no Redis, no database, no app context."""
    return _local(app).get(code)


def lookup_link(code: str) -> LinkTarget | None:
    """The active link with this code: from this process's LRU, then Redis, then the database."""
    if not CODE_RE.fullmatch(code):
        return None
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    local = _local(app)
    hit, target = local.get(code)
    if hit:
        return target
    client = buffer.click_redis(app)
    if client is not None:
        try:
            raw = client.get(_link_key(code))
        except buffer.redis_errors():
            buffer.mark_redis_down(app)
            client, raw = None, None
        if raw is not None:
            target = None if raw == b"-" else LinkTarget.loads(raw)
            local.put(code, target)
            return target
    target = _load_target(code)
    # The read-only lookup must not leave a transaction open on a pooled connection.
    db.session.rollback()
    local.put(code, target)
    if client is not None:
        try:
            client.set(_link_key(code), target.dumps() if target else "-",
                       ex=REDIS_LINK_TTL if target else int(LOCAL_MISS_TTL))
        except buffer.redis_errors():
            buffer.mark_redis_down(app)
    return target


def forget_link(code: str) -> None:
    """Drop a link from the caches after a change (other processes' LRUs expire in seconds)."""
    forget_links([code])


def forget_links(codes: Iterable[str]) -> None:
    """Drop links from this process's LRU and from Redis (other processes' LRUs expire in seconds)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    codes = list(codes)
    local = _local(app)
    for code in codes:
        local.drop(code)
    client = buffer.click_redis(app)
    if client is None or not codes:
        return
    try:
        for start in range(0, len(codes), 1000):
            client.delete(*[_link_key(code) for code in codes[start:start + 1000]])
    except buffer.redis_errors():
        buffer.mark_redis_down(app)


# -- the visit ---------------------------------------------------------------------------

@dataclass(slots=True)
class Visit:
    """What the redirect learns from one request, already cleaned (no NULs, bounded lengths)."""

    ip: str | None
    user_agent: str | None
    referer: str | None
    subs: tuple[str | None, ...]
    visitor_id: str | None
    is_head: bool
    paid_ads_param: str | None
    #: ``cr`` on the tracking URL: the creative whose snippet was clicked (checked later).
    creative_id: int | None = None
    #: Two upper-case letters from the trusted country header, else None.
    country: str | None = None


def clean(value: str | None, limit: int) -> str | None:
    """Text safe to store: NULs removed (PostgreSQL refuses them), cut to ``limit``; '' → None."""
    if not value:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value[:limit] or None


def valid_visitor_id(cookie: str | None) -> str | None:
    """The visitor id from the cookie if it is one we could have issued; else None."""
    if cookie and VISITOR_RE.fullmatch(cookie):
        return cookie
    return None


def new_visitor_id() -> str:
    """A random visitor id: no personal data in it."""
    return secrets.token_urlsafe(16)


def paid_ads_param(args: Any) -> str | None:
    """The name of the first ad-network click id on the tracking URL's query."""
    for name in PAID_ADS_PARAMS:
        if args.get(name):
            return name
    return None


_CRAWLER_RE = re.compile("|".join(f"(?:{p['pattern']})"
                                  for p in crawleruseragents.CRAWLER_USER_AGENTS_DATA))


@lru_cache(maxsize=8192)
def is_crawler(user_agent: str) -> bool:
    """Whether the user agent matches the maintained ``crawler-user-agents`` list."""
    return _CRAWLER_RE.search(user_agent) is not None


_IPV4_RE = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})")


@lru_cache(maxsize=4096)
def truncate_ip(ip: str | None) -> str | None:
    """IPv4 to its /24, IPv6 to its /48 (network address); None when not an address."""
    if not ip:
        return None
    quad = _IPV4_RE.fullmatch(ip)
    if quad and all(int(octet) < 256 for octet in quad.groups()):
        return f"{int(quad[1])}.{int(quad[2])}.{int(quad[3])}.0"
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if addr.version == 6 and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False).network_address)


@lru_cache(maxsize=8)
def _hmac_base(secret_key: str) -> hmac.HMAC:
    return hmac.new(secret_key.encode(), digestmod=hashlib.sha256)


def ip_hash(ip: str | None, secret_key: str) -> str | None:
    """Keyed hash (HMAC-SHA256 with SECRET_KEY) of the full address: dedupe without keeping it."""
    if not ip:
        return None
    mac = _hmac_base(secret_key).copy()  # the keyed state, prepared once
    mac.update(ip.encode())
    return mac.hexdigest()


# -- recording ----------------------------------------------------------------------------

def record_click(target: LinkTarget, visit: Visit, app: Flask | None = None) -> tuple[str, str]:
    """Record one click (Redis buffer, else the database) and return ``(click_id, location)``.

    ``app`` given: no app context is needed unless the click has to go to the database (the
    redirect's fast path calls it so; pushing a context cost 8.5 us a redirect).
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    now = clock.now()
    click_id = tokens.click_id_for(now)
    is_bot = visit.is_head or not visit.user_agent or is_crawler(visit.user_agent)
    hashed = ip_hash(visit.ip, app.config["SECRET_KEY"])
    subs = tuple(given or default for given, default in zip(visit.subs, target.subs, strict=True))
    device = hashlib.sha256(f"{hashed}\x00{visit.user_agent}".encode()).hexdigest()[:24]
    # Sticky per visitor: the cookie's id; without one (cookieless merchants) the device.
    location, variant_id = target.landing(click_id, visit.visitor_id or device)
    creative_id = visit.creative_id if visit.creative_id in target.creative_ids else None
    row: dict[str, Any] = {
        "id": click_id, "created_at": now, "link_id": target.link_id,
        "merchant_id": target.merchant_id, "offer_id": target.offer_id,
        "partner_id": target.partner_id, "ip_truncated": truncate_ip(visit.ip), "ip_hash": hashed,
        "user_agent": visit.user_agent, "referer": visit.referer,
        "sub1": subs[0], "sub2": subs[1], "sub3": subs[2], "sub4": subs[3], "sub5": subs[4],
        "visitor_id": visit.visitor_id, "is_unique": False, "is_bot": is_bot,
        "paid_ads_param": visit.paid_ads_param, "country": visit.country,
        "variant_id": variant_id, "creative_id": creative_id,
    }
    fingerprint = None if is_bot else device
    if buffer.buffer_click(row, fingerprint, app, index_visitor=target.first_click) is None:
        if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
            buffer.write_click_to_database(row, check_unique=not is_bot)
        else:
            with app.app_context():
                buffer.write_click_to_database(row, check_unique=not is_bot)
    return click_id, location

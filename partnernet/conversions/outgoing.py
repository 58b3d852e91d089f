"""Outgoing partner postbacks: a partner's URL template called when its commission is
created or changes status, signed, retried with backoff, never towards private addresses.

``notify_partner(commission_id)`` is the job (enqueue it on any commission status
change); ``retry_due_deliveries`` is the periodic retry; ``send_test`` is the
portal's "send test" action.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

from flask import current_app
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError

from partnernet import clock, tokens
from partnernet.accounts.models import Partner
from partnernet.commissions.models import Commission
from partnernet.conversions.exceptions import NoPostbackUrl, UnsafeDestination
from partnernet.conversions.models import Conversion, PartnerPostbackAttempt, PartnerPostbackDelivery
from partnernet.extensions import db
from partnernet.links import services as links
from partnernet.money import format_amount

log = logging.getLogger(__name__)

#: Seconds to wait after the 1st, 2nd, ... failed attempt: 7 tries over about 18 hours.
BACKOFF_SECONDS = (60, 300, 1800, 7200, 21600, 36000)
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1
DEFAULT_TIMEOUT_SECONDS = 10
MACROS = ("click_id", "sub1", "sub2", "sub3", "sub4", "sub5", "event", "order_id", "amount",
          "commission", "currency", "status", "conversion_id")
_MACRO_RE = re.compile(r"\{(" + "|".join(MACROS) + r")\}")
USER_AGENT = "partnernet-postback/1"


# -- pure pieces -------------------------------------------------------------------------

def render_url(template: str, values: dict[str, Any]) -> str:
    """Fill the template's macros, each value URL-encoded (a value cannot add parameters)."""
    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        return quote("" if value is None else str(value), safe="")

    return _MACRO_RE.sub(fill, template)


def next_attempt_delay(attempts: int) -> timedelta | None:
    """How long to wait after ``attempts`` failed tries; None once we give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return timedelta(seconds=BACKOFF_SECONDS[attempts - 1])


def signature(secret: str, timestamp: int, url: str) -> str:
    """``sha256=<hex>`` HMAC of ``"<timestamp>.<url>"``: the partner verifies it with its secret."""
    message = f"{timestamp}.{url}".encode()
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def address_is_public(address: str) -> bool:
    """Whether an IP is a global unicast address: not private, loopback, link-local
    (cloud metadata 169.254.169.254), CGNAT, multicast, reserved or unspecified."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global and not ip.is_multicast and not ip.is_reserved)


@dataclass
class Destination:
    scheme: str
    host: str
    port: int
    ip: str
    target: str  # path and query


def resolve_destination(url: str, *, allow_private: bool) -> Destination:
    """Parse and resolve the URL; refuse non-public addresses (checked after DNS, and the
    connection is then pinned to the checked address, so DNS cannot change it in between)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeDestination("The postback URL must be an absolute http(s) URL.")
    if parts.username or parts.password:
        raise UnsafeDestination("The postback URL must not carry credentials.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeDestination("The postback URL has an invalid port.") from None
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeDestination("The postback URL's host does not resolve.",
                                code="unresolvable_host") from None
    addresses = [str(info[4][0]).split("%")[0] for info in infos]
    if not addresses:
        raise UnsafeDestination("The postback URL's host does not resolve.", code="unresolvable_host")
    if not allow_private:
        bad = [a for a in addresses if not address_is_public(a)]
        if bad:
            raise UnsafeDestination(details={"host": parts.hostname, "address": bad[0]})
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Destination(parts.scheme, parts.hostname, port, addresses[0], target)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._pinned_ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._pinned_ip, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, ip: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._pinned_ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._pinned_ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def http_get(dest: Destination, headers: dict[str, str], timeout: float) -> int:
    """GET the destination at its pinned address (no redirects followed); the HTTP status."""
    cls = _PinnedHTTPSConnection if dest.scheme == "https" else _PinnedHTTPConnection
    conn = cls(dest.host, dest.port, dest.ip, timeout)
    try:
        conn.request("GET", dest.target, headers=headers)
        response = conn.getresponse()
        response.read(4096)
        return response.status
    finally:
        conn.close()


# -- deliveries ----------------------------------------------------------------------------

def _allow_private() -> bool:
    cfg = current_app.config
    return cfg.get("ENV_NAME") == "development" and bool(cfg.get("PARTNER_POSTBACK_ALLOW_PRIVATE"))


def _partner_secret(partner: Partner) -> str:
    if not partner.postback_secret:
        partner.postback_secret = tokens.new_secret("pps_", 32)
    return partner.postback_secret


def macro_values(commission: Commission) -> dict[str, Any]:
    """The macro values of a commission: its conversion, click sub ids and amounts."""
    conversion = db.session.get(Conversion, commission.conversion_id) \
        if commission.conversion_id is not None else None
    click = links.resolve_click(conversion.click_id) \
        if conversion is not None and conversion.click_id else None
    values: dict[str, Any] = {
        "commission": format_amount(commission.amount_minor, commission.currency),
        "currency": commission.currency, "status": commission.status,
        "conversion_id": commission.conversion_id or "",
    }
    if conversion is not None:
        values.update(
            event=conversion.event, order_id=conversion.order_id, click_id=conversion.click_id or "",
            amount="" if conversion.amount_minor is None
            else format_amount(conversion.amount_minor, conversion.currency))
    if click is not None:
        values.update({f"sub{i}": getattr(click, f"sub{i}") or "" for i in range(1, 6)})
    return values


def attempt(delivery: PartnerPostbackDelivery, partner: Partner, *, retry: bool = True) -> None:
    """Make one attempt of a delivery and record it (flush only)."""
    now = clock.now()
    timeout = float(current_app.config.get("PARTNER_POSTBACK_TIMEOUT", DEFAULT_TIMEOUT_SECONDS))
    status: int | None = None
    error: str | None = None
    started = time.monotonic()
    permanent = False
    try:
        dest = resolve_destination(delivery.url, allow_private=_allow_private())
        stamp = int(now.timestamp())
        status = http_get(dest, {
            "User-Agent": USER_AGENT,
            "X-Partnernet-Timestamp": str(stamp),
            "X-Partnernet-Signature": signature(_partner_secret(partner), stamp, delivery.url),
        }, timeout)
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except UnsafeDestination as exc:
        error, permanent = f"{exc.code}: {exc.message}", True
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        error = f"{exc.__class__.__name__}: {exc}"[:500]
    duration_ms = int((time.monotonic() - started) * 1000)
    db.session.add(PartnerPostbackAttempt(delivery_id=delivery.id, attempted_at=now,
                                          http_status=status, error=error, duration_ms=duration_ms))
    delivery.attempts += 1
    delivery.last_http_status = status
    delivery.last_error = error
    if error is None:
        delivery.status, delivery.next_attempt_at = "delivered", None
    else:
        delay = next_attempt_delay(delivery.attempts) if retry and not permanent else None
        if delay is None:
            delivery.status, delivery.next_attempt_at = "failed", None
        else:
            delivery.status, delivery.next_attempt_at = "pending", now + delay
    db.session.flush()


def record_delivery(commission_id: int) -> tuple[PartnerPostbackDelivery, Partner] | None:
    """The pending delivery of the commission's current status, made if missing. Commits.

    None when the partner has no postback URL or another worker made it just now.
    """
    commission = db.session.get(Commission, commission_id)
    if commission is None:
        return None
    partner = db.session.get(Partner, commission.partner_id)
    if partner is None or not partner.postback_url:
        return None
    delivery = db.session.scalar(select(PartnerPostbackDelivery).where(
        PartnerPostbackDelivery.commission_id == commission.id,
        PartnerPostbackDelivery.commission_status == commission.status))
    if delivery is None:
        delivery = PartnerPostbackDelivery(
            partner_id=partner.id, merchant_id=commission.merchant_id, commission_id=commission.id,
            commission_status=commission.status, is_test=False,
            url=render_url(partner.postback_url, macro_values(commission))[:4000],
            status="pending", attempts=0, next_attempt_at=clock.now())
        try:
            with db.session.begin_nested():
                db.session.add(delivery)
        except IntegrityError:
            db.session.commit()
            return None  # another worker has it
        db.session.commit()
    return delivery, partner


def notify_partner(commission_id: int) -> PartnerPostbackDelivery | None:
    """Job: tell the partner about its commission's current status (once per status). Commits.

    Enqueue it whenever a commission is created or changes status. Safe to run twice:
    a (commission, status) pair is delivered at most once.
    """
    found = record_delivery(commission_id)
    if found is None:
        return None
    delivery, partner = found
    if delivery.status != "pending" or delivery.attempts > 0:
        return delivery  # delivered, given up, or the retry job owns it now
    attempt(delivery, partner)
    db.session.commit()
    return delivery


def enqueue_notification(commission_id: int) -> None:
    """Queue ``notify_partner``; if the queue is unreachable, leave a pending delivery in the
    database for the periodic retry instead, so a Redis outage loses no partner postback."""
    from partnernet import jobs

    try:
        jobs.enqueue("partnernet.conversions.outgoing:notify_partner", commission_id)
    except Exception:  # noqa: BLE001 - the queue is a hint; the database keeps the truth
        log.warning("could not queue the partner postback of commission %s; "
                    "left for the retry job", commission_id, exc_info=True)
        try:
            record_delivery(commission_id)
        except Exception:  # noqa: BLE001
            db.session.rollback()
            log.exception("could not record the partner postback of commission %s", commission_id)


def retry_due_deliveries(limit: int = 200) -> int:
    """Periodic job: retry deliveries whose backoff has elapsed. Commits each; the count."""
    stmt = select(PartnerPostbackDelivery.id).where(
        PartnerPostbackDelivery.status == "pending",
        PartnerPostbackDelivery.next_attempt_at <= clock.now(),
    ).order_by(PartnerPostbackDelivery.next_attempt_at).limit(limit)
    done = 0
    for delivery_id in list(db.session.scalars(stmt)):
        lock = select(PartnerPostbackDelivery).where(PartnerPostbackDelivery.id == delivery_id)
        if db.session.get_bind().dialect.name == "postgresql":
            lock = lock.with_for_update(skip_locked=True)
        delivery = db.session.scalar(lock)
        if delivery is None or delivery.status != "pending" or delivery.next_attempt_at is None \
                or delivery.next_attempt_at > clock.now():
            db.session.commit()
            continue
        partner = db.session.get(Partner, delivery.partner_id)
        assert partner is not None
        attempt(delivery, partner)
        db.session.commit()
        done += 1
    return done


TEST_VALUES = {"click_id": "test", "sub1": "test", "event": "sale", "order_id": "TEST-ORDER",
               "amount": "100.00", "commission": "10.00", "currency": "USD", "status": "test",
               "conversion_id": "0"}


def send_test(partner_id: int, merchant_id: int | None = None) -> PartnerPostbackDelivery:
    """The portal's "send test": one attempt now with sample values, logged. Commits."""
    partner = db.session.get(Partner, partner_id)
    if partner is None or not partner.postback_url:
        raise NoPostbackUrl()
    delivery = PartnerPostbackDelivery(
        partner_id=partner.id, merchant_id=merchant_id, commission_id=None, commission_status=None,
        is_test=True, url=render_url(partner.postback_url, TEST_VALUES)[:4000], status="pending",
        attempts=0, next_attempt_at=None)
    db.session.add(delivery)
    db.session.flush()
    attempt(delivery, partner, retry=False)
    db.session.commit()
    return delivery


def deliveries_query(*, partner_id: int | None = None, merchant_id: int | None = None,
                     status: str | None = None) -> Select[PartnerPostbackDelivery]:
    """Deliveries newest first: a partner's own, or those of a merchant's commissions."""
    stmt = select(PartnerPostbackDelivery)
    if partner_id is not None:
        stmt = stmt.where(PartnerPostbackDelivery.partner_id == partner_id)
    if merchant_id is not None:
        stmt = stmt.where(PartnerPostbackDelivery.merchant_id == merchant_id)
    if status:
        stmt = stmt.where(PartnerPostbackDelivery.status == status)
    return stmt.order_by(PartnerPostbackDelivery.created_at.desc(), PartnerPostbackDelivery.id.desc())


def attempts_of(delivery_ids: list[int]) -> dict[int, list[PartnerPostbackAttempt]]:
    """Attempt logs of deliveries, oldest attempt first (one query for a page)."""
    out: dict[int, list[PartnerPostbackAttempt]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        rows = db.session.scalars(select(PartnerPostbackAttempt).where(
            PartnerPostbackAttempt.delivery_id.in_(delivery_ids)).order_by(PartnerPostbackAttempt.id))
        for row in rows:
            out[row.delivery_id].append(row)
    return out


def due_before(moment: datetime) -> int:
    """How many deliveries wait for a retry due before ``moment`` (for monitoring)."""
    from sqlalchemy import func

    return int(db.session.scalar(select(func.count()).where(
        PartnerPostbackDelivery.status == "pending",
        PartnerPostbackDelivery.next_attempt_at <= moment)) or 0)

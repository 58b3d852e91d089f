"""Postback intake: authenticate, log the raw request first, dedupe, attribute, refund.

``receive_postback`` is the use case behind ``/postback``. It commits twice, on
purpose: first the raw ``Postback`` row (so the log has every authenticated request,
whatever happens next), then the conversion with its commission and the postback's
outcome, together.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from partnernet import clock
from partnernet.accounts.models import Partner
from partnernet.commissions import services as commissions
from partnernet.commissions.models import Commission
from partnernet.conversions import outgoing
from partnernet.conversions.attribution import attribute
from partnernet.conversions.auth import PostbackRequest, authenticate, source_allowed
from partnernet.conversions.exceptions import (
    CurrencyMismatch,
    InvalidAmount,
    InvalidParameter,
    MissingOrderId,
    OrderConflict,
    SourceNotAllowed,
    UnknownCurrency,
    UnknownEvent,
    UnknownOrder,
)
from partnernet.conversions.models import Conversion, Postback
from partnernet.errors import PartnernetError
from partnernet.extensions import db
from partnernet.money import MoneyError, normalize_currency, parse_amount

#: Parameters never written to the raw log.
SECRET_PARAMS = ("token", "signature")
#: A postback is a handful of parameters; a flood of them is not kept.
MAX_LOGGED_PARAMS = 50
EVENT_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_LENGTHS = {"order_id": 255, "click_id": 64, "coupon": 64, "customer_id": 255,
               "customer_email": 254, "event": 64, "status": 16, "amount": 32, "currency": 8}


@dataclass
class PostbackAnswer:
    """The 200 answer of a postback and what to do once it is committed."""

    body: dict[str, Any]
    notify_commission_ids: list[int] = field(default_factory=list)
    #: The postback's outcome was written with the conversion (one statement, PostgreSQL).
    outcome_recorded: bool = False


# -- the use case ----------------------------------------------------------------------

def email_hash(email: str) -> str:
    """SHA-256 of the trimmed, lower-cased email: what is kept instead of the address."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def loggable_params(params: dict[str, str]) -> dict[str, str]:
    """Parameters for the raw log: no token or signature, the customer's email hashed."""
    logged = {k: v[:1000] for k, v in list(params.items())[:MAX_LOGGED_PARAMS]
              if k not in SECRET_PARAMS}
    if logged.get("customer_email"):
        logged["customer_email"] = "sha256:" + email_hash(params["customer_email"])
    return logged


def receive_postback(req: PostbackRequest) -> PostbackAnswer:
    """Authenticate, log, then record a conversion or refund. Commits (log first).

    On PostgreSQL the request runs on one autocommit connection: the raw log with the
    dedupe look-up is one statement, the reads of attribution and the engine go to it,
    and a new conversion, its commission and the postback's outcome are written by one
    statement (so together or not at all). Refunds, and every other database, use the
    session and commit once.
    """
    now = clock.now()
    creds, auth_method, params = authenticate(req, now)
    log_values = dict(merchant_id=creds.merchant_id, received_at=now, method=req.method,
                      params=loggable_params(params),
                      source_ip=(req.source_ip or "")[:64] or None,
                      order_id=(params.get("order_id") or "")[:255] or None,
                      outcome="received", auth_method=auth_method)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn, \
                commissions.reading_on(conn):
            return _receive(req, creds.merchant_id, list(creds.allowlist), params, now,
                            log_values, conn)
    return _receive(req, creds.merchant_id, list(creds.allowlist), params, now, log_values, None)


def _receive(req: PostbackRequest, merchant_id: int, allowlist: list[str], params: dict[str, str],
             now: datetime, log_values: dict[str, Any], conn: Connection | None) -> PostbackAnswer:
    key = _order_key_or_none(params)
    looked_up = None
    if req.postback_id is not None:
        # The fast path logged this request already and handed it over: complete its row.
        postback_id = req.postback_id
    elif conn is not None and key is not None:
        postback_id, looked_up = log_raw_postback_and_look_up(log_values, key, conn)
    else:
        postback_id = log_raw_postback(**log_values)
    try:
        if not source_allowed(allowlist, req.source_ip):
            raise SourceNotAllowed(details={"source_ip": req.source_ip})
        answer = process(merchant_id, params, now, req.source_ip, looked_up=looked_up,
                         postback_id=postback_id, autocommit=conn)
    except (PartnernetError, MoneyError) as exc:
        db.session.rollback()
        status = getattr(exc, "status_code", 400)
        _record_outcome(postback_id, exc.code, status, exc.message, None)
        db.session.commit()
        if isinstance(exc, PartnernetError):
            exc.details = {**exc.details, "postback_id": postback_id}
        raise
    except Exception:
        db.session.rollback()
        _record_outcome(postback_id, "internal_error", 500, "unexpected error", None)
        db.session.commit()
        raise
    answer.body["postback_id"] = postback_id
    if not answer.outcome_recorded:
        if conn is not None and not db.session().in_transaction():
            # Only reads so far (a duplicate): one autocommitted statement.
            _record_outcome(postback_id, answer.body["status"], 200, None,
                            answer.body["conversion_id"], conn=conn)
        else:
            _record_outcome(postback_id, answer.body["status"], 200, None,
                            answer.body["conversion_id"])
            db.session.commit()
    for commission_id in answer.notify_commission_ids:
        outgoing.enqueue_notification(commission_id)
    return answer


def log_raw_postback_and_look_up(
        values: dict[str, Any], key: tuple[str, str],
        conn: Connection) -> tuple[int, dict[tuple[str, str], Any]]:
    """``log_raw_postback`` on an autocommit connection (PostgreSQL), and in the same
    statement the order's existing conversion: ``{(event, order_id): row or None}``.

    The look-up reads committed data like the one ``process`` would make a moment later;
    a conversion inserted in between is still caught by the unique constraint.
    """
    row = {"http_status": None, "conversion_id": None, "message": None, **values,
           "k_merchant_id": values["merchant_id"], "k_event": key[0], "k_order_id": key[1]}
    found = conn.execute(_LOG_AND_LOOK_UP, row).one()
    existing = found if found.id is not None else None
    return int(found.postback_id), {key: existing}


def log_raw_postback(**values: Any) -> int:
    """Store the raw postback and commit it at once, on a connection of its own; its id.

    One autocommitted statement on a connection of its own: committed before the
    use case begins, whatever happens to it, and the session is left untouched.
    """
    row = {"http_status": None, "conversion_id": None, "message": None, **values}
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        return int(conn.execute(_INSERT_POSTBACK, row).scalar_one())


_postbacks = Postback.__table__
_INSERT_POSTBACK = insert(_postbacks).returning(_postbacks.c.id)
_logged = (insert(_postbacks)
           .values({c.name: bindparam(c.name, type_=c.type) for c in _postbacks.c if c.name != "id"})
           .returning(_postbacks.c.id).cte("logged"))
_LOG_AND_LOOK_UP = (
    select(_logged.c.id.label("postback_id"), Conversion.__table__.c.id,
           Conversion.__table__.c.currency, Conversion.__table__.c.amount_minor)
    .select_from(_logged.outerjoin(Conversion.__table__, and_(
        Conversion.__table__.c.merchant_id == bindparam("k_merchant_id"),
        Conversion.__table__.c.event == bindparam("k_event"),
        Conversion.__table__.c.order_id == bindparam("k_order_id")))))
_UPDATE_OUTCOME = (update(_postbacks).where(_postbacks.c.id == bindparam("postback_id"))
                   .values(outcome=bindparam("outcome"), http_status=bindparam("http_status"),
                           message=bindparam("message"), conversion_id=bindparam("conversion_id")))


def _record_outcome(postback_id: int, outcome: str, http_status: int, message: str | None,
                    conversion_id: int | None, *, conn: Connection | None = None) -> None:
    (conn or db.session.connection()).execute(_UPDATE_OUTCOME, {
        "postback_id": postback_id, "outcome": outcome[:32], "http_status": http_status,
        "message": message[:500] if message else None, "conversion_id": conversion_id})


def _param(params: dict[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    value = value.strip()
    if len(value) > MAX_LENGTHS.get(name, 255):
        raise InvalidParameter(f"{name} is too long.", details={"fields": {name: ["Too long."]}})
    return value or None


def _currency(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return normalize_currency(text)
    except MoneyError as exc:
        raise UnknownCurrency(exc.message, details={"currency": text}) from None


def _amount(text: str | None, currency: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_amount(text, currency)
    except MoneyError as exc:
        raise InvalidAmount(exc.message, details={"amount": text}) from None


def _order_key(params: dict[str, str]) -> tuple[str, str, str | None]:
    """The event, status and order id of a postback, checked."""
    event = _param(params, "event") or "sale"
    if not EVENT_RE.match(event):
        raise InvalidParameter("event must be lower-case letters, digits and _.",
                               details={"fields": {"event": ["Not a valid event name."]}})
    status = (_param(params, "status") or "approved").lower()
    if status not in ("approved", "refunded"):
        raise InvalidParameter("status must be approved or refunded.",
                               details={"fields": {"status": ["approved or refunded"]}})
    return event, status, _param(params, "order_id")


def _conversion_order_id(event: str, order_id: str | None, click_id: str | None) -> str:
    """The order id a conversion is deduplicated on (one made up for a lead without one)."""
    if order_id:
        return order_id
    if event == "sale" or not click_id:
        raise MissingOrderId(details={"event": event})
    return f"click:{click_id.lower()}"  # a lead without an order: one per click


def _order_key_or_none(params: dict[str, str]) -> tuple[str, str] | None:
    """(event, order id) of a new conversion's postback; None for a refund or bad parameters."""
    try:
        event, status, order_id = _order_key(params)
        if status == "refunded":
            return None
        return event, _conversion_order_id(event, order_id, _param(params, "click_id"))
    except (PartnernetError, MoneyError):
        return None


def process(merchant_id: int, params: dict[str, str], now: datetime, source_ip: str | None, *,
            looked_up: dict[tuple[str, str], Any] | None = None, postback_id: int | None = None,
            autocommit: Connection | None = None) -> PostbackAnswer:
    """Record the conversion (or refund) a postback reports; flush only, the caller commits.

    ``looked_up``: the order's existing conversion, already read (``{(event, order_id): row
    or None}``). ``autocommit`` (PostgreSQL): a new conversion, its commission and the
    outcome of postback ``postback_id`` are written at once on that connection.
    """
    event, status, order_id = _order_key(params)
    currency = _currency(_param(params, "currency"))
    amount_text = _param(params, "amount")
    click_id = _param(params, "click_id")
    coupon = _param(params, "coupon")
    if status == "refunded":
        return refund(merchant_id, event, order_id, amount_text, currency)
    order_id = _conversion_order_id(event, order_id, click_id)
    key = (event, order_id)
    existing = looked_up[key] if looked_up is not None and key in looked_up \
        else _existing(merchant_id, event, order_id)
    if existing is not None:
        return duplicate(existing, amount_text, currency)

    att = attribute(merchant_id, click_id, coupon, now)
    offer = att.offer
    plan = next((p for p in offer.plans if p.event == event), None)
    if plan is None:
        raise UnknownEvent(f"The offer has no commission plan for event {event!r}.",
                           details={"event": event, "offer_id": offer.id,
                                    "events": [p.event for p in offer.plans]})
    currency = currency or offer.currency
    if currency != offer.currency:
        raise CurrencyMismatch(f"The offer is in {offer.currency}; the postback said {currency}.",
                               details={"currency": currency, "offer_currency": offer.currency})
    amount_minor = _amount(amount_text, currency)
    if plan.type == "cps" and amount_minor is None:
        raise InvalidAmount(f"amount is required: event {event!r} pays a percent of it.")
    email = _param(params, "customer_email")
    click = att.click
    values = dict(
        merchant_id=merchant_id, offer_id=offer.id, partner_id=att.partner_id,
        click_id=click.id if click is not None else None,
        coupon_id=att.coupon.id if att.coupon is not None else None,
        event=event, order_id=order_id, amount_minor=amount_minor, currency=currency,
        refunded_minor=0, customer_id=_param(params, "customer_id"),
        customer_email_hash=email_hash(email) if email else None,
        customer_email_domain=email.rpartition("@")[2].lower()[:255] or None if email else None,
        # The shopper's address (the click's), as the commission engine would set it.
        ip_hash=click.ip_hash if click is not None and click.ip_hash else None,
        status="approved", created_at=now, updated_at=now)
    if autocommit is not None and postback_id is not None:
        return _write_at_once(autocommit, postback_id, values, click, offer, source_ip,
                              amount_text, currency)
    conversion = _insert_once(values)
    if conversion is None:
        # Another request inserted this order between our look-up and our insert.
        existing = _existing(merchant_id, event, order_id)
        assert existing is not None
        return duplicate(existing, amount_text, currency)
    commission, wants_postbacks = commissions.conversion_commission(
        conversion, click, postback_ip=source_ip, offer=offer)
    notify = [commission.id] if commission is not None and wants_postbacks else []
    return PostbackAnswer(_answer(conversion, "accepted", False, commission), notify)


def _write_at_once(conn: Connection, postback_id: int, values: dict[str, Any], click: Any,
                   offer: Any, source_ip: str | None, amount_text: str | None,
                   currency: str) -> PostbackAnswer:
    """PostgreSQL: the commission is computed first (reads only), then one autocommitted
    statement inserts the conversion unless the order exists (``ON CONFLICT DO NOTHING``),
    its commission, and the postback's outcome — all three or none."""
    conversion = Conversion(**values)
    commission_values, wants_postbacks = commissions.compute_commission(
        conversion, click, postback_ip=source_ip, offer=offer)
    assert commission_values is not None  # the offer has a plan for the event (checked)
    params = {f"v_{k}": v for k, v in conversion_values(conversion).items()}
    params.update({f"m_{k}": v for k, v in commission_values.items()})
    params["pb_id"] = postback_id
    row = conn.execute(_WRITE_AT_ONCE, params).first()
    if row is None:
        # Another request inserted this order between our look-up and our insert.
        existing = _existing(values["merchant_id"], values["event"], values["order_id"])
        assert existing is not None
        return duplicate(existing, amount_text, currency)
    conversion.id = row.id
    commission = Commission(id=row.commission_id, conversion_id=row.id, **commission_values)
    notify = [commission.id] if wants_postbacks else []
    return PostbackAnswer(_answer(conversion, "accepted", False, commission), notify,
                          outcome_recorded=True)


def conversion_values(conversion: Conversion) -> dict[str, Any]:
    """Every column of a conversion not inserted yet (the ip hash as the engine set it)."""
    return {name: getattr(conversion, name) for name in _CONVERSION_COLUMNS}


_conversions = Conversion.__table__
_UNIQUE = [_conversions.c.merchant_id, _conversions.c.event, _conversions.c.order_id]
_CONVERSION_COLUMNS = [c.name for c in _conversions.c if c.name != "id"]
_commissions = Commission.__table__
_COMMISSION_COLUMNS = [c.name for c in _commissions.c if c.name not in ("id", "conversion_id")]
_new_conversion = (
    postgresql.insert(_conversions)
    .values({n: bindparam(f"v_{n}", type_=_conversions.c[n].type) for n in _CONVERSION_COLUMNS})
    .on_conflict_do_nothing(index_elements=_UNIQUE)
    .returning(_conversions.c.id).cte("new_conversion"))
_new_commission = (
    insert(_commissions)
    .from_select(_COMMISSION_COLUMNS + ["conversion_id"], select(
        *[bindparam(f"m_{n}", type_=_commissions.c[n].type) for n in _COMMISSION_COLUMNS],
        _new_conversion.c.id))
    .returning(_commissions.c.id, _commissions.c.conversion_id).cte("new_commission"))
_outcome = (
    update(Postback.__table__)
    .where(Postback.__table__.c.id == bindparam("pb_id"),
           select(_new_commission.c.id).exists())
    .values(outcome="accepted", http_status=200, message=None,
            conversion_id=select(_new_commission.c.conversion_id).scalar_subquery())
    .returning(Postback.__table__.c.id).cte("outcome"))
_WRITE_AT_ONCE = (
    select(_new_conversion.c.id, _new_commission.c.id.label("commission_id"))
    .select_from(_new_conversion.join(
        _new_commission, _new_commission.c.conversion_id == _new_conversion.c.id))
    .add_cte(_outcome))
_INSERT_ONCE = {
    name: dialect.insert(_conversions).on_conflict_do_nothing(index_elements=_UNIQUE)
    .returning(_conversions.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}
_EXISTING = select(_conversions.c.id, _conversions.c.currency, _conversions.c.amount_minor).where(
    _conversions.c.merchant_id == bindparam("merchant_id"),
    _conversions.c.event == bindparam("event"), _conversions.c.order_id == bindparam("order_id"))
_COMMISSION_OF = select(Commission.__table__).where(
    Commission.__table__.c.conversion_id == bindparam("conversion_id"))


def _existing(merchant_id: int, event: str, order_id: str) -> Any:
    """The id, currency and amount of the merchant's conversion of an order and event, if any."""
    return commissions.reader().execute(_EXISTING, {
        "merchant_id": merchant_id, "event": event, "order_id": order_id}).first()


def _insert_once(values: dict[str, Any]) -> Conversion | None:
    """Insert the conversion unless its (merchant, event, order id) exists; None if it does.

    The unique constraint decides, so concurrent postbacks of one order make one
    conversion: ``INSERT ... ON CONFLICT DO NOTHING RETURNING id`` (PostgreSQL, SQLite
    3.35+) waits for a concurrent insert of the same order and then inserts nothing.
    """
    conn = db.session.connection()
    stmt = _INSERT_ONCE.get(conn.dialect.name)
    if stmt is None:  # another database: a savepoint around a plain insert
        conversion = Conversion(**values)
        try:
            with db.session.begin_nested():
                db.session.add(conversion)
        except IntegrityError:
            return None
        return conversion
    new_id = conn.execute(stmt, values).scalar()
    if new_id is None:
        return None
    return commissions.attach(Conversion(id=new_id, **values))


def _has_postback_url(commission: Commission) -> bool:
    """Whether the partner wants postbacks (so no job is queued for the many who do not)."""
    partner = db.session.get(Partner, commission.partner_id)  # the engine has loaded it
    return bool(partner is not None and partner.postback_url)


def find_conversion(merchant_id: int, event: str, order_id: str, *,
                    for_update: bool = False) -> Conversion | None:
    """The merchant's conversion of an order and event, if any."""
    stmt = select(Conversion).where(Conversion.merchant_id == merchant_id,
                                    Conversion.event == event, Conversion.order_id == order_id)
    if for_update:
        stmt = stmt.with_for_update()
    return db.session.scalar(stmt)


def _commission_of(conversion: Any) -> Any:
    """The conversion's commission as a row (its attributes are the model's), or None."""
    return commissions.reader().execute(_COMMISSION_OF, {"conversion_id": conversion.id}).first()


def _answer(conversion: Any, status: str, is_duplicate: bool, commission: Any) -> dict[str, Any]:
    return {"conversion_id": conversion.id, "status": status, "duplicate": is_duplicate,
            "commission": commissions.commission_view(commission) if commission else None}


_LOOK_UP: Any = object()


def duplicate(existing: Any, amount_text: str | None, currency: str | None, *,
              commission: Any = _LOOK_UP) -> PostbackAnswer:
    """A repeat of a known order: 200 duplicate, or 409 if the amount or currency differ.

    ``commission``: the order's commission row (or None) when the caller read it already."""
    if currency is not None and currency != existing.currency:
        raise OrderConflict(details={"conversion_id": existing.id, "currency": existing.currency})
    if amount_text is not None:
        amount = _amount(amount_text, existing.currency)
        if amount != existing.amount_minor:
            raise OrderConflict(details={"conversion_id": existing.id, "currency": existing.currency})
    if commission is _LOOK_UP:
        commission = _commission_of(existing)
    return PostbackAnswer(_answer(existing, "duplicate", True, commission))


def refund(merchant_id: int, event: str, order_id: str | None, amount_text: str | None,
           currency: str | None) -> PostbackAnswer:
    """Refund a known order in full or in part; ``amount`` is the total refunded so far.

    A total is idempotent: the same refund sent twice changes nothing the second time.
    """
    if not order_id:
        raise MissingOrderId(details={"status": "refunded"})
    conversion = find_conversion(merchant_id, event, order_id, for_update=True)
    if conversion is None:
        raise UnknownOrder(details={"order_id": order_id, "event": event})
    if currency is not None and currency != conversion.currency:
        raise OrderConflict(details={"conversion_id": conversion.id, "currency": conversion.currency})
    whole = conversion.amount_minor or 0
    total = _amount(amount_text, conversion.currency) if amount_text is not None and whole else None
    total = whole if total is None else total
    if total > whole:
        raise InvalidAmount("The refunded amount is more than the order's amount.",
                            details={"amount": amount_text, "order_amount_minor": whole})
    if total == 0 and whole:
        raise InvalidAmount("A refund amount must be more than zero.")
    already_full = conversion.status == "refunded"
    if already_full or (conversion.refunded_minor and total <= conversion.refunded_minor):
        return PostbackAnswer(_answer(conversion, "refunded", True, _commission_of(conversion)))
    before = _commission_of(conversion)
    status_before = before.status if before is not None else None
    conversion.refunded_minor = total
    conversion.status = "refunded" if total >= whole else "partially_refunded"
    commission = commissions.reverse_for_refund(conversion, total)
    db.session.flush()
    notify = []
    if commission is not None and commission.status != status_before and _has_postback_url(commission):
        notify.append(commission.id)
    return PostbackAnswer(_answer(conversion, "refunded", False, commission), notify)


# -- queries for the API ---------------------------------------------------------------

def conversions_query(merchant_id: int, *, status: str | None = None, partner_id: int | None = None,
                      start: datetime | None = None,
                      end: datetime | None = None) -> Select[Conversion]:
    """The merchant's conversions, newest first, filtered."""
    stmt = select(Conversion).where(Conversion.merchant_id == merchant_id)
    if status:
        stmt = stmt.where(Conversion.status == status)
    if partner_id is not None:
        stmt = stmt.where(Conversion.partner_id == partner_id)
    if start is not None:
        stmt = stmt.where(Conversion.created_at >= start)
    if end is not None:
        stmt = stmt.where(Conversion.created_at < end)
    return stmt.order_by(Conversion.created_at.desc(), Conversion.id.desc())


def commissions_by_conversion(conversion_ids: list[int]) -> dict[int, Commission]:
    """The commissions of these conversions, by conversion id (one query for a page)."""
    if not conversion_ids:
        return {}
    rows = db.session.scalars(select(Commission).where(Commission.conversion_id.in_(conversion_ids)))
    return {c.conversion_id: c for c in rows if c.conversion_id is not None}


def postbacks_query(merchant_id: int, *, order_id: str | None = None, outcome: str | None = None,
                    start: datetime | None = None,
                    end: datetime | None = None) -> Select[Postback]:
    """The merchant's raw postback log, newest first: "did you receive order X?"."""
    stmt = select(Postback).where(Postback.merchant_id == merchant_id)
    if order_id:
        stmt = stmt.where(Postback.order_id == order_id)
    if outcome:
        stmt = stmt.where(Postback.outcome == outcome)
    if start is not None:
        stmt = stmt.where(Postback.received_at >= start)
    if end is not None:
        stmt = stmt.where(Postback.received_at < end)
    return stmt.order_by(Postback.received_at.desc(), Postback.id.desc())

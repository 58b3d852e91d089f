"""A merchant's payout settings (minimum, four-eyes threshold, rail, weekly schedule) and
the job that creates the scheduled runs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from partnernet import clock
from partnernet.accounts.models import Merchant
from partnernet.extensions import db
from partnernet.money import format_amount, parse_amount
from partnernet.payouts import exceptions as exc
from partnernet.payouts.models import PayoutRun
from partnernet.payouts.services import create_run, min_payout_minor


def payout_settings_view(merchant: Merchant) -> dict[str, Any]:
    """The merchant's payout settings, amounts in major units of its currency."""
    settings = merchant.payout_settings or {}
    threshold = settings.get("approval_threshold_minor")
    if isinstance(threshold, dict):
        threshold = threshold.get(merchant.currency)
    return {"currency": merchant.currency,
            "min_payout": format_amount(min_payout_minor(merchant, merchant.currency), merchant.currency),
            "approval_threshold": None if threshold is None else format_amount(int(threshold),
                                                                               merchant.currency),
            "schedule": settings.get("schedule"), "rail": settings.get("rail", "auto")}


def update_payout_settings(merchant_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """Set the minimum payout, four-eyes threshold, weekly schedule and rail. Commits."""
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise exc.RunNotFound()
    settings = dict(merchant.payout_settings or {})
    if "min_payout" in changes:
        merchant.min_payout_minor = parse_amount(changes["min_payout"], merchant.currency)
    if "approval_threshold" in changes:
        value = changes["approval_threshold"]
        if value is None:
            settings.pop("approval_threshold_minor", None)
        else:
            settings["approval_threshold_minor"] = {merchant.currency: parse_amount(value, merchant.currency)}
    if "schedule" in changes:
        if changes["schedule"] is None:
            settings.pop("schedule", None)
        else:
            settings["schedule"] = dict(changes["schedule"])
    if "rail" in changes:
        settings["rail"] = changes["rail"]
    merchant.payout_settings = settings
    db.session.commit()
    return payout_settings_view(merchant)


def run_scheduled_payouts() -> dict[str, int]:
    """Create the weekly runs that are due now (``payout_settings.schedule``: weekday, hour)."""
    now = clock.now()
    created = 0
    for merchant in list(db.session.scalars(select(Merchant))):
        schedule = (merchant.payout_settings or {}).get("schedule") or {}
        if not schedule or int(schedule.get("weekday", -1)) != now.weekday() \
                or int(schedule.get("hour", 0)) > now.hour:
            continue
        recent = db.session.scalar(select(PayoutRun.id).where(
            PayoutRun.merchant_id == merchant.id, PayoutRun.trigger == "schedule",
            PayoutRun.created_at > now - timedelta(days=6)))
        db.session.commit()
        if recent is None:
            create_run(merchant.id, trigger="schedule")
            created += 1
    return {"runs": created}

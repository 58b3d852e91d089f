"""The fatigue scan: daily impression and click counts per creative through the pure detector."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from partnernet import clock
from partnernet.creatives.fatigue import DayCount, detect
from partnernet.creatives.models import Creative, Impression
from partnernet.creatives.settings import Settings, get_settings
from partnernet.extensions import db

WINDOW_DAYS = 60


def daily_series(creative_id: int, since: date) -> list[DayCount]:
    """Unique non-bot impressions and non-bot clicks per day of one creative since ``since``."""
    from partnernet.links.models import Click

    start = datetime.combine(since, time.min, tzinfo=UTC)
    from partnernet.reports.rollup import day_of

    day = day_of(Impression.created_at)
    imps = {str(d): n for d, n in db.session.execute(
        select(day, func.count()).where(Impression.creative_id == creative_id, Impression.is_bot.is_(False),
                                        Impression.is_unique.is_(True), Impression.created_at >= start)
        .group_by(day))}
    clicks: dict[str, int] = {}
    if hasattr(Click, "creative_id"):
        cday = day_of(Click.created_at)
        clicks = {str(d): n for d, n in db.session.execute(
            select(cday, func.count()).where(Click.creative_id == creative_id, Click.is_bot.is_(False),
                                             Click.created_at >= start).group_by(cday))}
    days = sorted(set(imps) | set(clicks))
    return [DayCount(date.fromisoformat(d[:10]), imps.get(d, 0), clicks.get(d, 0)) for d in days]


def flag_fatigued() -> dict[str, Any]:
    """Run the detector on every active creative; set or clear ``fatigued_at``. Safe to rerun."""
    now = clock.now()
    today = now.date()
    flagged = cleared = 0
    by_merchant: dict[int, Settings] = {}
    for creative in db.session.scalars(select(Creative).where(Creative.status == "active")):
        settings = by_merchant.get(creative.merchant_id)
        if settings is None:
            settings = by_merchant[creative.merchant_id] = get_settings(creative.merchant_id)
        started = (creative.starts_at or creative.created_at).date()
        result = detect(daily_series(creative.id, max(started, today - timedelta(days=WINDOW_DAYS))),
                        started, today, drop=settings.fatigue_drop, refresh_days=settings.refresh_days)
        if result.tired:
            if creative.fatigued_at is None:
                creative.fatigued_at = now
                flagged += 1
            creative.fatigue_reasons = ",".join(result.reasons)
        elif creative.fatigued_at is not None:
            creative.fatigued_at, creative.fatigue_reasons = None, None
            cleared += 1
    db.session.commit()
    return {"flagged": flagged, "cleared": cleared}

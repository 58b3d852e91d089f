"""Creative fatigue, pure: a creative is tired when its recent CTR fell well below its launch
CTR, or when it is older than the merchant's refresh interval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

DEFAULT_DROP = Decimal("0.30")
DEFAULT_REFRESH_DAYS = 28
LAUNCH_DAYS = 14
RECENT_DAYS = 7
#: Fewer impressions than this in a window: its CTR says nothing.
MIN_IMPRESSIONS = 200


@dataclass(frozen=True)
class DayCount:
    """Impressions and clicks of one creative on one day."""

    day: date
    impressions: int
    clicks: int


@dataclass(frozen=True)
class FatigueResult:
    """Whether a creative is tired, why, and the CTRs compared (Decimal, None if unknown)."""

    tired: bool
    reasons: tuple[str, ...]
    launch_ctr: Decimal | None
    recent_ctr: Decimal | None


def _ctr(days: list[DayCount]) -> Decimal | None:
    imps = sum(d.impressions for d in days)
    if imps < MIN_IMPRESSIONS:
        return None
    return Decimal(sum(d.clicks for d in days)) / Decimal(imps)


def detect(series: list[DayCount], started: date, today: date, *, drop: Decimal = DEFAULT_DROP,
           refresh_days: int = DEFAULT_REFRESH_DAYS) -> FatigueResult:
    """Compare the CTR of the last 7 full days (before ``today``) with the first 14 days from
    ``started``; flag a fall of more than ``drop`` (0.30 = 30%), or age > ``refresh_days``."""
    launch_end = started + timedelta(days=LAUNCH_DAYS)
    recent_start = today - timedelta(days=RECENT_DAYS)
    launch = [d for d in series if started <= d.day < launch_end]
    recent = [d for d in series if recent_start <= d.day < today and d.day >= launch_end]
    launch_ctr, recent_ctr = _ctr(launch), _ctr(recent)
    reasons = []
    if launch_ctr and recent_ctr is not None and recent_ctr < launch_ctr * (1 - drop):
        reasons.append("ctr_drop")
    if (today - started).days > refresh_days:
        reasons.append("age")
    return FatigueResult(bool(reasons), tuple(reasons), launch_ctr, recent_ctr)

"""Imports every feature's models so the metadata (and Alembic) sees all tables."""

from partnernet.accounts.models import ApiKey, Merchant, Partner, User
from partnernet.commissions.models import Commission, LedgerEntry
from partnernet.conversions.models import Conversion, Postback
from partnernet.creatives.models import Creative, Impression, LandingVariant
from partnernet.links.models import Click, Coupon, Link
from partnernet.offers.models import CommissionPlan, Membership, Offer, PlanOverride, PlanTier
from partnernet.payouts.models import Payout, PayoutItem, PayoutRun, StripeEvent
from partnernet.reports.models import (
    AnomalyAlert,
    ClickRollup,
    ConversionRollup,
    OfferBudget,
    RollupWatermark,
)

__all__ = [
    "ApiKey", "Click", "Commission", "CommissionPlan", "Conversion", "Coupon", "LedgerEntry",
    "Link", "Membership", "Merchant", "Offer", "Partner", "Payout", "PayoutItem", "PayoutRun",
    "PlanOverride", "PlanTier", "Postback", "StripeEvent", "User",
    "AnomalyAlert", "ClickRollup", "ConversionRollup", "OfferBudget", "RollupWatermark",
    "Creative", "Impression", "LandingVariant",
]

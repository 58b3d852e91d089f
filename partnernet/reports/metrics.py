"""Every report metric, defined once, as pure functions of summed counts and minor units.

Money metrics are computed per currency and never add two currencies. Ratios round
through ``partnernet.money.prorate`` (the one rounding rule, half-up); a ratio whose
denominator is zero is ``None`` (shown as ``null`` / an empty CSV cell).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from partnernet.money import exponent, format_amount, prorate

#: The event name of sales and leads (the postback's ``event``); CPC accruals use ``_cpc``.
SALE, LEAD, CPC_EVENT = "sale", "lead", "_cpc"

#: name → definition; the README section and the API description are written from this.
DEFINITIONS: dict[str, str] = {
    "clicks": "every recorded click, bots included",
    "unique_clicks": "clicks flagged unique at the redirect (first click of a visitor on a "
                     "link within the unique window); bots are never unique",
    "bot_clicks": "clicks from known crawler user agents",
    "conversions": "conversions of every event (sale, lead, custom), refunded ones included",
    "sales": "conversions with event `sale`",
    "leads": "conversions with event `lead`",
    "conversion_rate": "conversions ÷ unique clicks, in percent (2 decimals)",
    "revenue": "sum of the conversions' amounts before refunds (sales and custom events "
               "that carry an amount)",
    "refunds": "sum of refunded amounts",
    "refunded_conversions": "conversions refunded in full or in part",
    "commission": "partner earnings: commissions that are not rejected, minus what refunds "
                  "reversed (pending, held, approved and paid all count)",
    "epc": "earnings per click: commission ÷ clicks (2 more decimals than the currency)",
    "revenue_per_click": "revenue ÷ clicks (2 more decimals than the currency)",
    "cpa": "net commission on sales ÷ sales",
    "cpl": "net commission on leads ÷ leads",
    "roas": "revenue ÷ commission (2 decimals)",
    "reversal_rate": "reversed commission ÷ commission before reversals, in percent",
    "held": "commissions held for review (fraud rules, caps)",
    "rejected": "commissions rejected (their amounts are not in commission)",
}


@dataclass
class ClickCounts:
    """Summed click counts of one report group."""

    clicks: int = 0
    unique_clicks: int = 0
    bot_clicks: int = 0

    def add(self, clicks: int, unique_clicks: int, bot_clicks: int) -> None:
        self.clicks += int(clicks)
        self.unique_clicks += int(unique_clicks)
        self.bot_clicks += int(bot_clicks)


@dataclass
class MoneyTotals:
    """Summed conversions and money of one report group in one currency."""

    conversions: int = 0
    sales: int = 0
    leads: int = 0
    revenue_minor: int = 0
    refunded_minor: int = 0
    refunded_conversions: int = 0
    commission_minor: int = 0
    reversed_minor: int = 0
    sale_commission_minor: int = 0
    lead_commission_minor: int = 0
    held: int = 0
    rejected: int = 0
    by_event: dict[str, int] = field(default_factory=dict)

    def add_event(self, event: str, *, conversions: int, revenue_minor: int, refunded_minor: int,
                  refunded_conversions: int, commission_minor: int, reversed_minor: int,
                  held: int, rejected: int) -> None:
        """Fold one event's sums (a rollup row or a raw aggregate row) into the totals."""
        conversions, commission_minor, reversed_minor = (
            int(conversions), int(commission_minor), int(reversed_minor))
        net = commission_minor - reversed_minor
        if event != CPC_EVENT:
            self.conversions += conversions
            self.by_event[event] = self.by_event.get(event, 0) + conversions
        if event == SALE:
            self.sales += conversions
            self.sale_commission_minor += net
        elif event == LEAD:
            self.leads += conversions
            self.lead_commission_minor += net
        self.revenue_minor += int(revenue_minor)
        self.refunded_minor += int(refunded_minor)
        self.refunded_conversions += int(refunded_conversions)
        self.commission_minor += commission_minor
        self.reversed_minor += reversed_minor
        self.held += int(held)
        self.rejected += int(rejected)


def percent(part: int, whole: int) -> str | None:
    """``part ÷ whole`` in percent with 2 decimals (``"12.50"``), None when whole is 0."""
    if whole <= 0:
        return None
    return str(Decimal(prorate(10_000, part, whole)).scaleb(-2))


def ratio(part: int, whole: int) -> str | None:
    """``part ÷ whole`` with 2 decimals (``"3.25"``), None when whole is 0."""
    if whole <= 0:
        return None
    return str(Decimal(prorate(100, part, whole)).scaleb(-2))


def money_per(minor: int, count: int, currency: str) -> str | None:
    """An amount ÷ a count in major units with 2 more decimals than the currency has."""
    if count <= 0:
        return None
    return str(Decimal(prorate(minor, 100, count)).scaleb(-(exponent(currency) + 2)))


def conversion_rate(conversions: int, unique_clicks: int) -> str | None:
    """conversions ÷ unique clicks, percent."""
    return percent(conversions, unique_clicks)


def net_commission(m: MoneyTotals) -> int:
    """Commission earned: not-rejected commission amounts minus reversals."""
    return m.commission_minor - m.reversed_minor


def epc(m: MoneyTotals, c: ClickCounts, currency: str) -> str | None:
    """Earnings per click: commission ÷ clicks."""
    return money_per(net_commission(m), c.clicks, currency)


def revenue_per_click(m: MoneyTotals, c: ClickCounts, currency: str) -> str | None:
    """Revenue ÷ clicks."""
    return money_per(m.revenue_minor, c.clicks, currency)


def cpa(m: MoneyTotals, currency: str) -> str | None:
    """Net commission on sales ÷ sales."""
    return money_per_unit(m.sale_commission_minor, m.sales, currency)


def cpl(m: MoneyTotals, currency: str) -> str | None:
    """Net commission on leads ÷ leads."""
    return money_per_unit(m.lead_commission_minor, m.leads, currency)


def money_per_unit(minor: int, count: int, currency: str) -> str | None:
    """An amount ÷ a count, rounded to the currency's minor unit (CPA, CPL)."""
    if count <= 0:
        return None
    return format_amount(prorate(minor, 1, count), currency)


def roas(m: MoneyTotals) -> str | None:
    """Revenue ÷ commission."""
    return ratio(m.revenue_minor, net_commission(m))


def reversal_rate(m: MoneyTotals) -> str | None:
    """Reversed commission ÷ commission before reversals, percent."""
    return percent(m.reversed_minor, m.commission_minor)


def row_metrics(c: ClickCounts, m: MoneyTotals | None, currency: str | None) -> dict[str, Any]:
    """All metrics of one report row (one group in one currency, or no currency at all)."""
    m = m or MoneyTotals()
    row: dict[str, Any] = {
        "currency": currency,
        "clicks": c.clicks,
        "unique_clicks": c.unique_clicks,
        "bot_clicks": c.bot_clicks,
        "conversions": m.conversions,
        "sales": m.sales,
        "leads": m.leads,
        "conversion_rate": conversion_rate(m.conversions, c.unique_clicks),
        "refunded_conversions": m.refunded_conversions,
        "held": m.held,
        "rejected": m.rejected,
        "reversal_rate": reversal_rate(m),
        "roas": roas(m),
    }
    if currency is None:
        row.update(revenue=None, refunds=None, commission=None, epc=None,
                   revenue_per_click=None, cpa=None, cpl=None)
        return row
    row.update(
        revenue=format_amount(m.revenue_minor, currency),
        refunds=format_amount(m.refunded_minor, currency),
        commission=format_amount(net_commission(m), currency),
        epc=epc(m, c, currency),
        revenue_per_click=revenue_per_click(m, c, currency),
        cpa=cpa(m, currency),
        cpl=cpl(m, currency),
    )
    return row


#: Column order of report rows (after the group keys); the CSV header follows it.
METRIC_COLUMNS = (
    "currency", "clicks", "unique_clicks", "bot_clicks", "conversions", "sales", "leads",
    "conversion_rate", "revenue", "refunds", "refunded_conversions", "commission", "epc",
    "revenue_per_click", "cpa", "cpl", "roas", "reversal_rate", "held", "rejected",
)

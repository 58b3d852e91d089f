"""Every report metric, defined once, as pure functions of summed counts and minor units.

Money metrics are computed per currency and never add two currencies. Ratios round
half-up (away from zero on a tie, ``partnernet.money``'s one rounding rule), computed
exactly in integers: ``half_up(a, b)`` equals ``money.prorate(a, 1, b)`` and ``fixed``
prints what ``str(Decimal(n).scaleb(-places))`` prints (tests hold them to that), so a
report of thousands of rows needs no ``Decimal`` per cell. A ratio whose denominator is
zero is ``None`` (shown as ``null`` / an empty CSV cell).
"""

from __future__ import annotations

from typing import Any

from partnernet.money import exponent

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

#: The money sums of one group in one currency, in this order (``MoneySums`` below):
#: what the SQL of both report paths returns after the event pivot.
MONEY_SUMS = ("conversions", "sales", "leads", "revenue_minor", "refunded_minor",
              "refunded_conversions", "commission_minor", "reversed_minor",
              "sale_commission_minor", "lead_commission_minor", "held", "rejected")
(CONVERSIONS, SALES, LEADS, REVENUE, REFUNDED, REFUNDED_CONVERSIONS, COMMISSION, REVERSED,
 SALE_COMMISSION, LEAD_COMMISSION, HELD, REJECTED) = range(len(MONEY_SUMS))
NO_MONEY = (0,) * len(MONEY_SUMS)

#: Column order of report rows (after the group keys); the CSV header follows it.
METRIC_COLUMNS = (
    "currency", "clicks", "unique_clicks", "bot_clicks", "conversions", "sales", "leads",
    "conversion_rate", "revenue", "refunds", "refunded_conversions", "commission", "epc",
    "revenue_per_click", "cpa", "cpl", "roas", "reversal_rate", "held", "rejected",
)

_POW10: tuple[int, ...] = tuple(10 ** i for i in range(12))
_FIXED = tuple(f"%d.%0{i}d" for i in range(12))
_EXPONENTS: dict[str, int] = {}


# -- exact integer rounding and printing --------------------------------------------------

def half_up(part: int, whole: int) -> int:
    """``part ÷ whole`` (whole > 0) rounded half-up, away from zero on a tie: exact."""
    if part >= 0:
        return (2 * part + whole) // (2 * whole)
    return -((whole - 2 * part) // (2 * whole))


def fixed(n: int, places: int) -> str:
    """``n × 10**-places`` as a plain decimal string: ``fixed(1250, 2) == "12.50"``."""
    if places == 0:
        return str(n)
    if n < 0:
        return "-" + _FIXED[places] % divmod(-n, _POW10[places])
    return _FIXED[places] % divmod(n, _POW10[places])


# -- the metrics ---------------------------------------------------------------------------

def percent(part: int, whole: int) -> str | None:
    """``part ÷ whole`` in percent with 2 decimals (``"12.50"``), None when whole is 0."""
    if whole <= 0:
        return None
    return fixed(half_up(10_000 * part, whole), 2)


def ratio(part: int, whole: int) -> str | None:
    """``part ÷ whole`` with 2 decimals (``"3.25"``), None when whole is 0."""
    if whole <= 0:
        return None
    return fixed(half_up(100 * part, whole), 2)


def per_click(minor: int, clicks: int, exp: int) -> str | None:
    """An amount ÷ clicks in major units with 2 more decimals than the currency's ``exp``."""
    if clicks <= 0:
        return None
    return fixed(half_up(100 * minor, clicks), exp + 2)


def per_unit(minor: int, count: int, exp: int) -> str | None:
    """An amount ÷ a count, rounded to the currency's minor unit (``exp`` decimals)."""
    if count <= 0:
        return None
    return fixed(half_up(minor, count), exp)


def money_per(minor: int, count: int, currency: str) -> str | None:
    """``per_click`` in ``currency``."""
    return per_click(minor, count, exponent(currency))


def money_per_unit(minor: int, count: int, currency: str) -> str | None:
    """``per_unit`` in ``currency``."""
    return per_unit(minor, count, exponent(currency))


def conversion_rate(conversions: int, unique_clicks: int) -> str | None:
    """conversions ÷ unique clicks, percent."""
    return percent(conversions, unique_clicks)


def roas(revenue_minor: int, net_commission_minor: int) -> str | None:
    """Revenue ÷ net commission."""
    return ratio(revenue_minor, net_commission_minor)


def reversal_rate(reversed_minor: int, commission_minor: int) -> str | None:
    """Reversed commission ÷ commission before reversals, percent."""
    return percent(reversed_minor, commission_minor)


def metric_values(clicks: int, unique_clicks: int, bot_clicks: int, m: Any,
                  currency: str | None) -> tuple[Any, ...]:
    """The metrics of one report row (one group in one currency, or none), in
    ``METRIC_COLUMNS`` order; ``m`` holds the row's ``MONEY_SUMS`` (or ``NO_MONEY``).

    - commission (net) = commission before reversals − reversed;
    - epc = net commission ÷ clicks, revenue_per_click = revenue ÷ clicks;
    - cpa = net commission on sales ÷ sales, cpl = net commission on leads ÷ leads.
    """
    net = m[COMMISSION] - m[REVERSED]
    head = (clicks, unique_clicks, bot_clicks, m[CONVERSIONS], m[SALES], m[LEADS],
            conversion_rate(m[CONVERSIONS], unique_clicks))
    ratios = (roas(m[REVENUE], net), reversal_rate(m[REVERSED], m[COMMISSION]), m[HELD],
              m[REJECTED])
    if currency is None:
        return (None, *head, None, None, m[REFUNDED_CONVERSIONS], None, None, None, None, None,
                *ratios)
    exp = _EXPONENTS.get(currency)
    if exp is None:
        exp = _EXPONENTS[currency] = exponent(currency)
    return (currency, *head, fixed(m[REVENUE], exp), fixed(m[REFUNDED], exp),
            m[REFUNDED_CONVERSIONS], fixed(net, exp), per_click(net, clicks, exp),
            per_click(m[REVENUE], clicks, exp), per_unit(m[SALE_COMMISSION], m[SALES], exp),
            per_unit(m[LEAD_COMMISSION], m[LEADS], exp), *ratios)

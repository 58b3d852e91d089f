"""Money: integer minor units plus an ISO 4217 code, and the one rounding rule.

Every amount inside partnernet is an ``int`` of minor units (cents, yen, fils)
beside a three-letter currency code. Amounts cross the boundary as decimal
strings in major units (``"49.90"``). Percentages are ``Decimal``. No float ever
touches an amount: ``parse_amount`` refuses floats outright.

The rounding rule, used everywhere: ROUND_HALF_UP to the currency's minor unit
(``percent_of``). It is the rule finance teams expect on an invoice line.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

# ISO 4217 minor-unit exponents. Currencies not listed here are unknown and
# refused: guessing the exponent of a currency would guess the money.
_EXPONENTS: dict[str, int] = {
    # zero-decimal
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three-decimal
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}
_TWO_DECIMAL = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN "
    "BWP BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR "
    "KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN "
    "MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD "
    "SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SYP SZL THB TJS TMT TOP TRY TTD TWD TZS "
    "UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWL"
).split()
_EXPONENTS.update({code: 2 for code in _TWO_DECIMAL})

CURRENCIES: frozenset[str] = frozenset(_EXPONENTS)


class MoneyError(ValueError):
    """An amount or currency that cannot be taken as money."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def normalize_currency(currency: str) -> str:
    """Return the upper-case ISO 4217 code, or raise ``MoneyError(unknown_currency)``."""
    if not isinstance(currency, str):
        raise MoneyError("unknown_currency", "currency must be an ISO 4217 code")
    code = currency.strip().upper()
    if code not in _EXPONENTS:
        raise MoneyError("unknown_currency", f"unknown currency {currency[:16]!r}")
    return code


def exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has (USD 2, JPY 0, KWD 3)."""
    return _EXPONENTS[normalize_currency(currency)]


def parse_amount(value: str | int | Decimal, currency: str, *, allow_negative: bool = False) -> int:
    """Parse a major-unit amount (``"49.90"``) into minor units (``4990``).

    Refuses floats, more decimals than the currency has, non-finite values, and
    (unless ``allow_negative``) negative amounts. Never rounds: money is not guessed.
    """
    exp = exponent(currency)
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError("invalid_amount", "amount must be a decimal string, not a float")
    if isinstance(value, int):
        dec = Decimal(value)
    elif isinstance(value, Decimal):
        dec = value
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 32:
            raise MoneyError("invalid_amount", "amount must be a decimal number like 49.90")
        try:
            dec = Decimal(text)
        except InvalidOperation:
            raise MoneyError("invalid_amount", "amount must be a decimal number like 49.90") from None
    else:
        raise MoneyError("invalid_amount", "amount must be a decimal string")
    if not dec.is_finite():
        raise MoneyError("invalid_amount", "amount must be a finite number")
    if dec < 0 and not allow_negative:
        raise MoneyError("invalid_amount", "amount must not be negative")
    scaled = dec.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise MoneyError(
            "invalid_amount",
            f"{currency.upper()} has {exp} decimal places; {value!s} has more",
        )
    minor = int(scaled)
    if abs(minor) >= 10**15:
        raise MoneyError("invalid_amount", "amount is too large")
    return minor


def format_amount(minor: int, currency: str) -> str:
    """Format minor units as a major-unit decimal string (``4990, USD`` → ``"49.90"``)."""
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise TypeError("minor units must be an int")
    exp = exponent(currency)
    return str(Decimal(minor).scaleb(-exp).quantize(Decimal(1).scaleb(-exp)))


def percent_of(minor: int, percent: Decimal) -> int:
    """``percent`` % of an amount in minor units, rounded half-up to the minor unit.

    This is the only rounding in partnernet. The result never differs from the
    exact value by more than half a minor unit.
    """
    if not isinstance(percent, Decimal):
        raise TypeError("percent must be a Decimal")
    if not isinstance(minor, int) or isinstance(minor, bool):
        raise TypeError("minor units must be an int")
    exact = Decimal(minor) * percent / Decimal(100)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def prorate(minor: int, part: int, whole: int) -> int:
    """``minor × part / whole`` rounded half-up (e.g. reversing a partial refund)."""
    if whole <= 0:
        raise ValueError("whole must be positive")
    exact = Decimal(minor) * Decimal(part) / Decimal(whole)
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_percent(value: str | int | Decimal) -> Decimal:
    """Parse a percentage (``"12.5"``) into a ``Decimal`` between 0 and 100, 4 places at most."""
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError("invalid_percent", "percent must be a decimal string, not a float")
    try:
        dec = Decimal(str(value).strip())
    except InvalidOperation:
        raise MoneyError("invalid_percent", "percent must be a number like 12.5") from None
    if not dec.is_finite() or dec < 0 or dec > 100:
        raise MoneyError("invalid_percent", "percent must be between 0 and 100")
    if dec != dec.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP):
        raise MoneyError("invalid_percent", "percent has at most 4 decimal places")
    return dec


def format_percent(percent: Decimal) -> str:
    """A percentage as a plain decimal string without trailing zeros (``"12.5"``, ``"10"``)."""
    text = f"{percent.normalize():f}"
    return text

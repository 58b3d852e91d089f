"""Fraud rules: pure decisions over plain facts, and each merchant's settings for them.

Each rule is a function ``(facts, threshold) -> reason | None``: a reason (for a
person) when the rule fires. ``evaluate`` applies the merchant's settings — on/off,
threshold, action (``hold``/``reject``/``flag``), mode (``active``/``shadow``) — and
returns the flags ``[{rule, reason, action}]``; a shadow rule records
``action: "shadow"`` with the action it ``would`` have taken, and holds nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

ACTIONS = ("hold", "reject", "flag")
MODES = ("active", "shadow")

#: Free-mail domains: a customer on the same one as the partner is not self-referral.
GENERIC_DOMAINS = frozenset("""
gmail.com googlemail.com yahoo.com yahoo.co.uk yahoo.fr ymail.com hotmail.com hotmail.co.uk
hotmail.fr outlook.com live.com msn.com aol.com icloud.com me.com mac.com proton.me
protonmail.com gmx.com gmx.de gmx.net web.de mail.com yandex.com yandex.ru mail.ru qq.com
163.com 126.com zoho.com fastmail.com hey.com tutanota.com orange.fr free.fr laposte.net
t-online.de libero.it naver.com daum.net
""".split())

#: Every rule and its default: enabled, action, threshold (None: the rule has none).
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "fast_conversion": {"enabled": True, "mode": "active", "action": "hold", "threshold": 10},
    "self_referral": {"enabled": True, "mode": "active", "action": "hold", "threshold": None},
    "duplicate_ip": {"enabled": True, "mode": "active", "action": "hold", "threshold": 3},
    "blocked_ip": {"enabled": True, "mode": "active", "action": "reject", "threshold": None},
    "bot_click": {"enabled": True, "mode": "active", "action": "hold", "threshold": None},
    "paid_ads": {"enabled": True, "mode": "active", "action": "hold", "threshold": None},
    # action is decided per offer: reject when the offer credits coupons only if the
    # partner was involved (coupon_requires_click), else flag only.
    "coupon_leak": {"enabled": True, "mode": "active", "action": "auto", "threshold": None},
    "amount_outlier": {"enabled": True, "mode": "active", "action": "hold", "threshold": 10},
    "cap_exceeded": {"enabled": True, "mode": "active", "action": "hold", "threshold": None},
}
RULE_NAMES = tuple(DEFAULT_RULES)
THRESHOLD_HELP = {
    "fast_conversion": "seconds between click and conversion",
    "duplicate_ip": "conversions allowed from one IP per offer in 24 h",
    "amount_outlier": "multiple of the offer's trailing median amount",
}
#: Amount outliers need this many earlier amounts before a median means anything.
OUTLIER_MIN_SAMPLES = 5

DEFAULT_TRUSTED = {"enabled": False, "min_clean_payouts": 3, "hold_days": 7}


@dataclass
class Facts:
    """Everything the rules look at for one conversion (plain values, loaded by services)."""

    converted_at: datetime
    clicked_at: datetime | None = None
    click_is_bot: bool = False
    click_paid_ads: str | None = None
    offer_allows_paid_search: bool = True
    customer_email_hash: str | None = None
    customer_email_domain: str | None = None
    partner_email_hash: str | None = None
    partner_email_domain: str | None = None
    #: Conversions from the same (shopper) IP on this offer in the previous 24 h.
    same_ip_conversions_24h: int = 0
    #: Addresses to test against the block list (the postback's, the click's /24).
    ips: list[str] = field(default_factory=list)
    blocklist: list[str] = field(default_factory=list)
    is_coupon: bool = False
    coupon_partner_involved: bool = True
    coupon_requires_click: bool = False
    amount_minor: int | None = None
    #: The offer's trailing amounts: how many, and their median (``sample_of``).
    trailing_sample: tuple[int, Decimal | None] = (0, None)
    daily_cap: int | None = None
    partner_conversions_today: int = 0  # before this one


def fast_conversion(f: Facts, seconds: Any) -> str | None:
    if f.clicked_at is None:
        return None
    elapsed = (f.converted_at - f.clicked_at).total_seconds()
    if elapsed < float(seconds):
        return f"converted {max(elapsed, 0):.0f} s after the click (under {seconds} s)"
    return None


def self_referral(f: Facts, _: Any) -> str | None:
    if f.customer_email_hash and f.customer_email_hash == f.partner_email_hash:
        return "the customer's email is the partner's"
    domain = (f.customer_email_domain or "").lower()
    if domain and domain == (f.partner_email_domain or "").lower() and domain not in GENERIC_DOMAINS:
        return f"the customer's email is on the partner's domain {domain}"
    return None


def duplicate_ip(f: Facts, limit: Any) -> str | None:
    count = f.same_ip_conversions_24h + 1
    if count > int(limit):
        return f"{count} conversions from one IP on this offer in 24 h (more than {limit})"
    return None


def ip_blocked(ip: str, blocklist: list[str]) -> str | None:
    """The block-list entry (address or CIDR) that ``ip`` falls in, or None."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    for entry in blocklist:
        try:
            if addr in ipaddress.ip_network(entry, strict=False):
                return entry
        except ValueError:
            continue
    return None


def blocked_ip(f: Facts, _: Any) -> str | None:
    if not f.blocklist:
        return None
    for ip in f.ips:
        entry = ip_blocked(ip, f.blocklist)
        if entry is not None:
            return f"IP {ip} is on the block list ({entry})"
    return None


def bot_click(f: Facts, _: Any) -> str | None:
    return "the attributed click was flagged as a bot" if f.click_is_bot else None


def paid_ads(f: Facts, _: Any) -> str | None:
    if f.click_paid_ads and not f.offer_allows_paid_search:
        return f"the click carried a paid-ads click id ({f.click_paid_ads}); the offer forbids paid search"
    return None


def coupon_leak(f: Facts, _: Any) -> str | None:
    if f.is_coupon and not f.coupon_partner_involved:
        return "coupon used with no click from the coupon's partner for this visitor or customer"
    return None


def sample_of(amounts: list[int]) -> tuple[int, Decimal | None]:
    """How many earlier amounts, and their median (None without any): exact, the mean of the
    two middle amounts of an even count in Decimal, never a float."""
    if not amounts:
        return 0, None
    ordered = sorted(amounts)
    return len(ordered), middle(ordered[(len(ordered) - 1) // 2], ordered[len(ordered) // 2])


def middle(lower: int, upper: int) -> Decimal:
    """The median from the two middle amounts (the same one for an odd count)."""
    return Decimal(lower + upper) / 2


def amount_outlier(f: Facts, multiple: Any) -> str | None:
    count, mid = f.trailing_sample
    if count < OUTLIER_MIN_SAMPLES:
        return None  # too few to mean anything
    if f.amount_minor is None or mid is None or mid <= 0:
        return None
    if Decimal(f.amount_minor) > Decimal(str(multiple)) * mid:
        return f"amount is more than {multiple}× the offer's trailing median"
    return None


def cap_exceeded(f: Facts, _: Any) -> str | None:
    if f.daily_cap is not None and f.partner_conversions_today >= f.daily_cap:
        return f"over the partner's daily cap of {f.daily_cap} conversions on this offer"
    return None


RULES: dict[str, Callable[[Facts, Any], str | None]] = {
    "fast_conversion": fast_conversion, "self_referral": self_referral,
    "duplicate_ip": duplicate_ip, "blocked_ip": blocked_ip, "bot_click": bot_click,
    "paid_ads": paid_ads, "coupon_leak": coupon_leak, "amount_outlier": amount_outlier,
    "cap_exceeded": cap_exceeded,
}


def rule_settings(fraud_settings: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The merchant's effective settings of every rule (defaults filled in)."""
    stored = (fraud_settings or {}).get("rules") or {}
    return {name: {**default, **(stored.get(name) or {})} for name, default in DEFAULT_RULES.items()}


def trusted_settings(fraud_settings: dict[str, Any] | None) -> dict[str, Any]:
    """The merchant's risk-based hold ("trusted partner") settings, defaults filled in."""
    return {**DEFAULT_TRUSTED, **((fraud_settings or {}).get("trusted_partner") or {})}


def evaluate(facts: Facts, settings: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Run every enabled rule; the flags ``[{rule, reason, action[, would]}]`` of those that fire."""
    flags: list[dict[str, Any]] = []
    for name, rule in RULES.items():
        conf = settings[name]
        if not conf.get("enabled", True):
            continue
        reason = rule(facts, conf.get("threshold"))
        if reason is None:
            continue
        action = conf.get("action", "hold")
        if action == "auto":  # coupon_leak
            action = "reject" if facts.coupon_requires_click else "flag"
        if conf.get("mode") == "shadow":
            flags.append({"rule": name, "reason": reason, "action": "shadow", "would": action})
        else:
            flags.append({"rule": name, "reason": reason, "action": action})
    return flags


def status_for(flags: list[dict[str, Any]]) -> str:
    """``rejected`` if any flag rejects, ``held`` if any holds, else ``pending``."""
    actions = {f.get("action") for f in flags}
    if "reject" in actions:
        return "rejected"
    if "hold" in actions:
        return "held"
    return "pending"


def has_open_flags(flags: list[dict[str, Any]] | None) -> bool:
    """Whether a flag still needs a reviewer (hold/reject; flag-only and shadow do not)."""
    return any(f.get("action") in ("hold", "reject") for f in flags or [])


def validate_rule_patch(name: str, patch: dict[str, Any]) -> dict[str, Any]:
    """Check one rule's settings change; raise ValueError with a message for a person."""
    if name not in DEFAULT_RULES:
        raise ValueError(f"unknown rule {name!r}")
    clean: dict[str, Any] = {}
    for key, value in patch.items():
        if key == "enabled":
            if not isinstance(value, bool):
                raise ValueError("enabled must be true or false")
        elif key == "mode":
            if value not in MODES:
                raise ValueError("mode must be active or shadow")
        elif key == "action":
            allowed = ACTIONS + (("auto",) if name == "coupon_leak" else ())
            if value not in allowed:
                raise ValueError(f"action must be one of {', '.join(allowed)}")
        elif key == "threshold":
            if DEFAULT_RULES[name]["threshold"] is None:
                raise ValueError(f"{name} has no threshold")
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError("threshold must be a number")
            try:
                number = Decimal(str(value))
            except ArithmeticError:
                raise ValueError("threshold must be a number") from None
            if not number.is_finite() or number <= 0 or number > 10**6:
                raise ValueError("threshold must be a positive number")
            value = int(number) if number == number.to_integral_value() else str(number)
        else:
            raise ValueError(f"unknown setting {key!r}")
        clean[key] = value
    return clean

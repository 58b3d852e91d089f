"""A merchant's fraud settings (rules, trusted-partner hold, IP block list) and the shadow report."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from partnernet import clock
from partnernet.accounts.models import Merchant
from partnernet.commissions import fraud
from partnernet.commissions.exceptions import InvalidFraudSettings
from partnernet.commissions.models import Commission
from partnernet.extensions import db


def fraud_settings_view(merchant_id: int) -> dict[str, Any]:
    """Every rule's effective settings, the trusted-partner hold and the IP block list."""
    merchant = db.session.get(Merchant, merchant_id)
    assert merchant is not None
    rules = fraud.rule_settings(merchant.fraud_settings)
    return {
        "rules": {name: {**conf, "threshold_means": fraud.THRESHOLD_HELP.get(name)}
                  for name, conf in rules.items()},
        "trusted_partner": fraud.trusted_settings(merchant.fraud_settings),
        "ip_blocklist": list(merchant.ip_blocklist or []),
    }


def _clean_trusted(patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise ValueError("trusted_partner must be an object")
    clean: dict[str, Any] = {}
    for key, value in patch.items():
        if key == "enabled":
            if not isinstance(value, bool):
                raise ValueError("trusted_partner.enabled must be true or false")
        elif key in ("min_clean_payouts", "hold_days"):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3650:
                raise ValueError(f"trusted_partner.{key} must be a whole number 0..3650")
        else:
            raise ValueError(f"unknown trusted_partner setting {key!r}")
        clean[key] = value
    return clean


def _clean_blocklist(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 1000:
        raise ValueError("ip_blocklist must be a list of addresses or CIDRs (1000 at most)")
    out = []
    for entry in value:
        try:
            out.append(str(ipaddress.ip_network(str(entry).strip(), strict=False)))
        except ValueError:
            raise ValueError(f"{str(entry)[:64]!r} is not an IP address or CIDR") from None
    return out


def update_fraud_settings(merchant_id: int, patch: dict[str, Any]) -> dict[str, Any]:
    """Change some rules' settings, the trusted-partner hold or the block list. Commits."""
    merchant = db.session.get(Merchant, merchant_id)
    assert merchant is not None
    settings = dict(merchant.fraud_settings or {})
    rules = {k: dict(v) for k, v in (settings.get("rules") or {}).items()}
    try:
        for name, rule_patch in (patch.get("rules") or {}).items():
            if not isinstance(rule_patch, dict):
                raise ValueError(f"rules.{name} must be an object")
            rules[name] = {**rules.get(name, {}), **fraud.validate_rule_patch(name, rule_patch)}
        trusted = settings.get("trusted_partner") or {}
        if "trusted_partner" in patch:
            trusted = {**trusted, **_clean_trusted(patch["trusted_partner"])}
        blocklist = _clean_blocklist(patch["ip_blocklist"]) if "ip_blocklist" in patch else None
    except ValueError as exc:
        raise InvalidFraudSettings(str(exc)) from None
    merchant.fraud_settings = {**settings, "rules": rules, "trusted_partner": trusted}
    if blocklist is not None:
        merchant.ip_blocklist = blocklist
    db.session.commit()
    return fraud_settings_view(merchant_id)


def shadow_report(merchant_id: int, days: int = 30) -> dict[str, Any]:
    """Per rule: how many commissions it would have held/rejected in shadow mode lately."""
    until = clock.now()
    since = until - timedelta(days=days)
    rows = db.session.scalars(select(Commission.flags).where(
        Commission.merchant_id == merchant_id, Commission.created_at >= since))
    report = {name: {"would_hold": 0, "would_reject": 0, "would_flag": 0, "fired": 0}
              for name in fraud.RULE_NAMES}
    settings = fraud_settings_view(merchant_id)["rules"]
    for flags in rows:
        for flag in flags or []:
            entry = report.get(flag.get("rule"))
            if entry is None:
                continue
            entry["fired"] += 1
            if flag.get("action") == "shadow":
                key = {"hold": "would_hold", "reject": "would_reject"}.get(flag.get("would"), "would_flag")
                entry[key] += 1
    return {"from": since.isoformat(), "to": until.isoformat(), "days": days,
            "rules": {name: {**counts, "mode": settings[name]["mode"]}
                      for name, counts in report.items()}}


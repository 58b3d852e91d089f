"""A merchant's creative settings: fatigue threshold, refresh interval, variant-host allowlist."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from partnernet.creatives.exceptions import InvalidSettings
from partnernet.creatives.fatigue import DEFAULT_DROP, DEFAULT_REFRESH_DAYS
from partnernet.creatives.models import CreativeSettings
from partnernet.extensions import db

_HOST_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
MAX_HOSTS = 50


@dataclass(frozen=True)
class Settings:
    """The settings in force (the defaults when the merchant saved none)."""

    fatigue_drop_percent: int
    refresh_days: int
    variant_hosts: tuple[str, ...]

    @property
    def fatigue_drop(self) -> Decimal:
        return Decimal(self.fatigue_drop_percent) / Decimal(100)

    def view(self) -> dict[str, Any]:
        return {"fatigue_drop_percent": self.fatigue_drop_percent, "refresh_days": self.refresh_days,
                "variant_hosts": list(self.variant_hosts)}


DEFAULTS = Settings(int(DEFAULT_DROP * 100), DEFAULT_REFRESH_DAYS, ())


def parse_hosts(value: Any) -> tuple[str, ...]:
    """Hostnames from a list or a text (one per line, or commas); refuses anything else."""
    if value is None:
        return ()
    items = value if isinstance(value, list) else re.split(r"[\s,]+", str(value))
    hosts: list[str] = []
    bad = []
    for item in items:
        if not isinstance(item, str):
            bad.append(str(item)[:100])
            continue
        host = item.strip().lower().rstrip(".")
        if not host:
            continue
        if not _HOST_RE.match(host):
            bad.append(item[:100])
        elif host not in hosts:
            hosts.append(host)
    if bad:
        raise InvalidSettings("Variant hosts are plain host names like shop.example.com.",
                              details={"variant_hosts": bad[:10]})
    if len(hosts) > MAX_HOSTS:
        raise InvalidSettings(f"At most {MAX_HOSTS} variant hosts.", details={"variant_hosts": len(hosts)})
    return tuple(hosts)


def get_settings(merchant_id: int) -> Settings:
    """The merchant's settings, or the defaults."""
    row = db.session.get(CreativeSettings, merchant_id)
    if row is None:
        return DEFAULTS
    return Settings(row.fatigue_drop_percent, row.refresh_days,
                    tuple(h for h in (row.variant_hosts or "").split("\n") if h))


def update_settings(merchant_id: int, data: dict[str, Any]) -> Settings:
    """Change some settings (the others keep their value). Commits."""
    current = get_settings(merchant_id)
    row = db.session.get(CreativeSettings, merchant_id)
    if row is None:
        row = CreativeSettings(merchant_id=merchant_id, fatigue_drop_percent=current.fatigue_drop_percent,
                               refresh_days=current.refresh_days, variant_hosts=None)
        db.session.add(row)
    if data.get("fatigue_drop_percent") is not None:
        row.fatigue_drop_percent = int(data["fatigue_drop_percent"])
    if data.get("refresh_days") is not None:
        row.refresh_days = int(data["refresh_days"])
    if "variant_hosts" in data:
        row.variant_hosts = "\n".join(parse_hosts(data["variant_hosts"])) or None
    db.session.commit()
    return get_settings(merchant_id)


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``host`` is one of ``allowed`` or a subdomain of one."""
    host = host.lower().rstrip(".")
    return any(host == a or host.endswith("." + a) for a in allowed)

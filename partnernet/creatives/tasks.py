"""Periodic jobs of creatives: the impression flush and the daily fatigue scan."""

from __future__ import annotations

from typing import Any

from partnernet import jobs


def flush_impressions() -> dict[str, Any]:
    """Move the Redis impression buffer into the database (no-op without Redis)."""
    from partnernet.creatives.pixel import flush_impressions as flush

    return flush()


def flag_fatigued_creatives() -> dict[str, Any]:
    """Flag creatives whose CTR fell or that are past the refresh interval."""
    from partnernet.creatives.services_fatigue import flag_fatigued

    return flag_fatigued()


jobs.periodic("flush-impressions", "partnernet.creatives.tasks:flush_impressions", 5,
              "move buffered impressions from Redis into the database")
jobs.periodic("creative-fatigue", "partnernet.creatives.tasks:flag_fatigued_creatives", 86400,
              "flag creatives whose CTR fell >30% or that are older than the refresh interval")
jobs.periodic("accrue-cpm", "partnernet.commissions.cpm:accrue_cpm", 86400,
              "Accrue yesterday's CPM commissions (one per partner × offer × day, remainders carried)")

"""Periodic jobs of the reports: the incremental rollup, its daily recount, anomaly alerts."""

from __future__ import annotations

from typing import Any

from partnernet import jobs


def rollup() -> dict[str, Any]:
    """Bring the rollup tables up to date from their watermarks."""
    from partnernet.reports.rollup import run_rollup

    return run_rollup()


def rollup_reconcile() -> dict[str, Any]:
    """Recount the last two full days of click rollups (clicks flushed late from Redis)."""
    from partnernet.reports.rollup import reconcile_days

    return reconcile_days(2)


def anomalies() -> dict[str, Any]:
    """Compare yesterday with each partner's and offer's trailing baseline; raise alerts."""
    from partnernet.reports.insights import detect_anomalies

    return detect_anomalies()


jobs.periodic("rollup", "partnernet.reports.tasks:rollup", 60,
              "add new clicks, conversions and commission changes to the report rollups")
jobs.periodic("rollup-reconcile", "partnernet.reports.tasks:rollup_reconcile", 86400,
              "recount the last two days of click rollups from the raw clicks")
jobs.periodic("anomalies", "partnernet.reports.tasks:anomalies", 86400,
              "raise alerts on click floods, conversion rate drops and refund spikes")

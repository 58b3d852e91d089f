"""Payout jobs: one send per payout (takes its id), the sweeper, the weekly schedule."""

from __future__ import annotations

from partnernet import jobs
from partnernet.payouts import services
from partnernet.payouts import settings as payout_settings


def send_payout(payout_id: int) -> str:
    """Job: make the payout's transfer (or find it) and record the outcome."""
    return services.send_payout(payout_id)


def retry_payouts() -> dict[str, int]:
    """Periodic: re-send payouts left queued/processing (lost answers, dead workers, lost jobs)."""
    return services.retry_payouts()


def scheduled_payouts() -> dict[str, int]:
    """Periodic: the merchants' weekly payout runs."""
    return payout_settings.run_scheduled_payouts()


jobs.periodic("retry-payouts", "partnernet.payouts.tasks:retry_payouts", 60,
              "re-send payouts whose outcome is unknown or whose job was lost")
jobs.periodic("scheduled-payouts", "partnernet.payouts.tasks:scheduled_payouts", 3600,
              "start the merchants' weekly payout runs")

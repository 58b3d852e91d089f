"""Periodic jobs of the conversions feature.

The per-commission job is ``partnernet.conversions.outgoing:notify_partner`` (enqueue it
with the commission id whenever a commission is created or changes status).
"""

from __future__ import annotations

from partnernet import jobs

jobs.periodic("retry-partner-postbacks", "partnernet.conversions.outgoing:retry_due_deliveries", 60,
              "Retry outgoing partner postbacks whose backoff has elapsed")

"""Periodic jobs of the commissions feature."""

from __future__ import annotations

from partnernet import jobs

jobs.periodic("approve-matured", "partnernet.commissions.services:approve_matured", 3600,
              "Approve pending commissions whose hold has passed and that have no open flags")
jobs.periodic("accrue-cpc", "partnernet.commissions.cpc:accrue_cpc", 86400,
              "Accrue yesterday's CPC commissions (one per partner × offer × day)")

"""Errors of the reports API, each with the stable code a client sees."""

from __future__ import annotations

from partnernet.errors import BadRequest, NotFound


class InvalidReportRange(BadRequest):
    code = "invalid_report_range"
    message = "The report's dates or grouping are not valid."


class BudgetNotFound(NotFound):
    code = "budget_not_found"
    message = "This offer has no monthly budget."


class AlertNotFound(NotFound):
    code = "alert_not_found"
    message = "No such alert."

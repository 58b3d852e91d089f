"""``/api/v1/payouts`` (runs, payouts, manual rail) and Stripe onboarding of partners."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from partnernet.api.auth import authenticate_request, merchant_id
from partnernet.api.pagination import PageArgs, page_schema, paginate
from partnernet.payouts import connect, services
from partnernet.payouts import manual as payout_manual
from partnernet.payouts import settings as payout_settings
from partnernet.payouts.schemas import (
    ExportArgs,
    FailManualIn,
    MarkPaidIn,
    OnboardingOut,
    PayoutDetailOut,
    PayoutListArgs,
    PayoutOut,
    RunIn,
    RunOut,
    SettingsIn,
    SettingsOut,
)

blp = Blueprint("payouts", __name__, url_prefix="/api/v1", description="Payout runs and payouts")
blp.before_request(authenticate_request)


class PayoutListQuery(PageArgs, PayoutListArgs):
    pass


def _detail(payout: Any) -> Any:
    """The payout with its items (and, when failed, what it had claimed) for the schema."""
    from partnernet.money import format_amount

    payout.items_view = [{"commission_id": i.commission_id, "ledger_entry_id": i.ledger_entry_id,
                          "amount": format_amount(i.amount_minor, payout.currency)}
                         for i in services.payout_items(payout.id)]
    payout.released_view = [{"commission_id": i.get("commission_id"),
                             "ledger_entry_id": i.get("ledger_entry_id"),
                             "amount": format_amount(int(i["amount_minor"]), payout.currency)}
                            for i in (payout.released_items or [])]
    return payout


@blp.route("/payouts")
class Payouts(MethodView):
    @blp.arguments(PayoutListQuery, location="query")
    @blp.response(200, page_schema(PayoutOut, "PayoutPage"))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List the merchant's payouts, newest first."""
        stmt = services.payouts_query(merchant_id(), args.get("status"), args.get("partner_id"),
                                      args.get("run_id"))
        return paginate(stmt, args["page"], args["per_page"])

    @blp.arguments(RunIn)
    @blp.response(201, RunOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Start a payout run: one payout per partner and currency that can be paid now."""
        run = services.create_run(merchant_id(), partner_ids=data.get("partner_ids"),
                                  currency=data.get("currency"))
        from partnernet.money import format_amount

        totals = {cur: format_amount(int(v), cur) for cur, v in (run.totals or {}).items()}
        return {"id": run.id, "status": run.status, "trigger": run.trigger, "totals": totals,
                "transfer_group": f"run-{run.id}",
                "created_at": run.created_at, "approved_at": run.approved_at,
                "payouts": services.run_payouts(run.id), "skipped": run.skipped}


@blp.route("/payouts/settings")
class PayoutSettings(MethodView):
    @blp.response(200, SettingsOut)
    def get(self) -> dict[str, Any]:
        """The merchant's payout settings: minimum, four-eyes threshold, weekly schedule, rail."""
        from partnernet.accounts.models import Merchant
        from partnernet.extensions import db

        merchant = db.session.get(Merchant, merchant_id())
        assert merchant is not None  # the API key's merchant (a foreign key): it exists
        return payout_settings.payout_settings_view(merchant)

    @blp.arguments(SettingsIn)
    @blp.response(200, SettingsOut)
    def put(self, data: dict[str, Any]) -> dict[str, Any]:
        """Change the payout settings (fields left out stay as they are)."""
        return payout_settings.update_payout_settings(merchant_id(), data)


@blp.route("/payouts/<int:payout_id>")
class PayoutById(MethodView):
    @blp.response(200, PayoutDetailOut)
    def get(self, payout_id: int) -> Any:
        """One payout with the commissions and clawbacks it pays."""
        return _detail(services.get_payout(merchant_id(), payout_id))


@blp.route("/payouts/<int:payout_id>/mark-paid", methods=["POST"])
@blp.arguments(MarkPaidIn)
@blp.response(200, PayoutOut)
def mark_paid(data: dict[str, Any], payout_id: int) -> Any:
    """Record a manual-rail payout as paid outside partnernet, with its reference."""
    return payout_manual.mark_manual_paid(merchant_id(), payout_id, data["reference"])


@blp.route("/payouts/<int:payout_id>/fail", methods=["POST"])
@blp.arguments(FailManualIn)
@blp.response(200, PayoutOut)
def fail_manual(data: dict[str, Any], payout_id: int) -> Any:
    """A manual-rail payout that could not be paid: its amount returns to the balance."""
    return payout_manual.fail_manual(merchant_id(), payout_id, data["reason"])


@blp.route("/payouts/manual.csv", methods=["GET"])
@blp.arguments(ExportArgs, location="query")
@blp.doc(responses={"200": {"description": "The batch CSV.",
                            "content": {"text/csv": {"schema": {"type": "string"}}}}})
def export_manual(args: dict[str, Any]) -> Response:
    """The queued manual payouts as a PayPal Payouts or Wise batch CSV."""
    body = payout_manual.export_manual_csv(merchant_id(), args["format"])
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="payouts-{args["format"]}.csv"'})


@blp.route("/partners/<int:partner_id>/stripe/onboarding", methods=["POST"])
@blp.response(200, OnboardingOut)
def stripe_onboarding(partner_id: int) -> Any:
    """Create the partner's connected account (once) and return a fresh onboarding link."""
    return connect.start_onboarding(merchant_id(), partner_id)

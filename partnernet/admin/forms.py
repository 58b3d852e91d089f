"""Admin panel forms (Flask-WTF: CSRF on every one). Validation of the business data is the
offers/accounts schemas' job: these forms carry the typed values and show errors per field."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, InputRequired, Length, Optional

from partnernet.accounts.models import CHANNEL_TYPES
from partnernet.offers.models import ATTRIBUTION_MODELS, OFFER_STATUSES, PLAN_TYPES

PLAN_ROWS = 3


def choices(pairs: Any) -> list[Any]:
    """``(value, label)`` pairs as SelectField choices (SelectChoice where wtforms has it)."""
    try:
        from wtforms import SelectChoice  # wtforms >= 3.3 deprecates tuples
    except ImportError:  # pragma: no cover - older wtforms
        return list(pairs)
    return [SelectChoice(value, label) for value, label in pairs]


class PlanRow(Form):
    """One commission plan: event, type, rate (percent for cps, amount otherwise), tiers."""

    event = StringField("Event", validators=[Optional()])
    type = SelectField("Type", choices=choices((t, t.upper()) for t in PLAN_TYPES),
                       validate_choice=False)
    rate = StringField("Rate (% for CPS, amount otherwise)", validators=[Optional()])
    tiers = TextAreaField("Tiers: one per line, 'conversions=rate'", validators=[Optional()])


class OfferForm(FlaskForm):
    name = StringField("Name", validators=[Optional()])
    landing_url = StringField("Landing URL", validators=[Optional()])
    status = SelectField("Status", choices=choices((s, s) for s in OFFER_STATUSES),
                         validate_choice=False)
    hold_days = StringField("Hold days (blank: program default)", validators=[Optional()])
    attribution_window_days = StringField("Attribution window (days)", default="30")
    attribution_model = SelectField("Attribution model", choices=choices((m, m.replace("_", " "))
                                                                          for m in ATTRIBUTION_MODELS),
                                    validate_choice=False)
    daily_cap = StringField("Daily cap per partner (blank: none)", validators=[Optional()])
    click_id_param = StringField("Click id parameter name", default="click_id")
    allow_paid_search = BooleanField("Allow paid search traffic", default=True)
    coupon_requires_click = BooleanField("Coupons need a click from the same partner")
    requires_approval = BooleanField("Partners need approval for this offer")
    plans = FieldList(FormField(PlanRow), min_entries=PLAN_ROWS, max_entries=10)

    def to_payload(self) -> dict[str, Any]:
        """The API's offer body from what was typed (strings stay strings for the schema)."""
        def blank_none(value: str | None) -> str | None:
            return value.strip() if value and value.strip() else None

        data: dict[str, Any] = {
            "name": (self.name.data or "").strip(),
            "landing_url": (self.landing_url.data or "").strip(),
            "status": self.status.data,
            "hold_days": blank_none(self.hold_days.data),
            "attribution_window_days": blank_none(self.attribution_window_days.data) or "30",
            "attribution_model": self.attribution_model.data,
            "daily_cap": blank_none(self.daily_cap.data),
            "click_id_param": blank_none(self.click_id_param.data) or "click_id",
            "allow_paid_search": bool(self.allow_paid_search.data),
            "coupon_requires_click": bool(self.coupon_requires_click.data),
            "requires_approval": bool(self.requires_approval.data),
        }
        plans = []
        for row in self.plans:
            event = blank_none(row.form.event.data)
            if not event:
                continue
            kind = row.form.type.data
            rate_key = "percent" if kind == "cps" else "amount"
            plan: dict[str, Any] = {"event": event, "type": kind,
                                    rate_key: blank_none(row.form.rate.data)}
            tiers = []
            for line in (row.form.tiers.data or "").replace(",", "\n").splitlines():
                if not line.strip():
                    continue
                threshold, _, rate = line.partition("=")
                tiers.append({"min_conversions": threshold.strip(), rate_key: rate.strip() or None})
            if tiers:
                plan["tiers"] = tiers
            plans.append(plan)
        data["plans"] = plans
        return data


class PartnerStatusForm(FlaskForm):
    status = HiddenField(validators=[DataRequired()])


class ChannelForm(FlaskForm):
    channel_type = SelectField("Channel type",
                               choices=choices((c, c.replace("_", " ")) for c in CHANNEL_TYPES))


class InviteForm(FlaskForm):
    email = EmailField("Partner's email", validators=[DataRequired(), Email(), Length(max=254)])
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])


class OverrideForm(FlaskForm):
    offer_id = SelectField("Offer", coerce=int)
    event = StringField("Event", default="sale", validators=[DataRequired()])
    rate = StringField("Rate (% for CPS, amount otherwise)", validators=[DataRequired()])


class CouponForm(FlaskForm):
    partner_id = SelectField("Partner", coerce=int)
    offer_id = SelectField("Offer", coerce=int)
    code = StringField("Code", validators=[DataRequired(), Length(min=2, max=64)])


class ApiKeyForm(FlaskForm):
    name = StringField("Key name", default="default", validators=[DataRequired(), Length(max=100)])


class PrivacyForm(FlaskForm):
    """Click retention and cookieless mode (bounds are the privacy service's)."""

    click_retention_days = IntegerField("Keep clicks for (days)", validators=[InputRequired()])
    cookieless = BooleanField("Cookieless tracking: no visitor cookie; attribution by click id and "
                              "coupon only")


class ReviewForm(FlaskForm):
    action = SelectField("Decision", choices=choices([("approve", "Approve"), ("reject", "Reject")]))
    reason = StringField("Reason (kept with the decision)", validators=[Optional(), Length(max=1000)])


class ConfirmForm(FlaskForm):
    """A bare POST (rotate, revoke, pause): only the CSRF token."""

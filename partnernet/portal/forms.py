"""Partner portal forms (Flask-WTF: CSRF on every one)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional

from partnernet.accounts.models import CHANNEL_TYPES
from partnernet.admin.forms import choices


class SignupForm(FlaskForm):
    name = StringField("Your name or brand", validators=[DataRequired(), Length(max=200)])
    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField("Password (at least 10 characters)",
                             validators=[DataRequired(), Length(min=10, max=200)])
    confirm = PasswordField("Repeat the password",
                            validators=[DataRequired(), EqualTo("password", "The passwords differ.")])
    channel_type = SelectField("How you promote",
                               choices=choices((c, c.replace("_", " ")) for c in CHANNEL_TYPES))


class ApplyForm(FlaskForm):
    """A logged-in partner applies to another program: only the CSRF token."""


class LinkForm(FlaskForm):
    offer = SelectField("Offer", validators=[DataRequired()])
    sub1 = StringField("sub1", validators=[Optional(), Length(max=255)])
    sub2 = StringField("sub2", validators=[Optional(), Length(max=255)])
    sub3 = StringField("sub3", validators=[Optional(), Length(max=255)])
    utm_source = StringField("utm_source", validators=[Optional(), Length(max=255)])
    utm_medium = StringField("utm_medium", validators=[Optional(), Length(max=255)])
    utm_campaign = StringField("utm_campaign", validators=[Optional(), Length(max=255)])


class PostbackUrlForm(FlaskForm):
    postback_url = StringField("Postback URL template", validators=[Optional(), Length(max=2000)])

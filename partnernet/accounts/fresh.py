"""Fresh login: changing where money goes or which email logs in needs the password again.

A session remembers when its user last typed the password (``auth_at``, set at login, at
sign-up and at re-authentication). A view under ``fresh_login_required`` runs only when
that was less than ``FRESH_LOGIN_SECONDS`` ago (default 10 minutes); otherwise the user is
sent to ``/reauth`` and comes back to the page afterwards. A POST is never replayed after
the re-authentication: the user lands on the page again and submits once more.
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from flask import current_app, redirect, request, session, url_for
from flask_login import current_user

from partnernet import clock

SESSION_KEY = "auth_at"
DEFAULT_FRESH_SECONDS = 600


def mark_authenticated() -> None:
    """The user just proved the password in this session."""
    session[SESSION_KEY] = int(clock.now().timestamp())


def is_fresh() -> bool:
    """Whether the password was entered in this session within the fresh-login window."""
    at = session.get(SESSION_KEY)
    if not isinstance(at, int):
        return False
    window = int(current_app.config.get("FRESH_LOGIN_SECONDS", DEFAULT_FRESH_SECONDS))
    age = clock.now().timestamp() - at
    return 0 <= age <= window  # a clock step backwards does not make a session fresh forever


def fresh_login_required(view: Any) -> Any:
    """Send a user whose password entry is older than the window to ``/reauth`` first."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user.is_authenticated and not is_fresh():
            # Back to the page (a GET), never to the POST itself: nothing is replayed.
            target = request.full_path.rstrip("?") if request.method == "GET" else request.path
            return redirect(url_for("accounts.reauth", next=target))
        return view(*args, **kwargs)

    return wrapper

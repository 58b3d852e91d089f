"""The audit trail: security-relevant events to the ``partnernet.audit`` log and a table.

Values are escaped (CR/LF and other control characters) so that nobody can forge a
log line by putting a newline into an email address or a reason.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import has_request_context, request

log = logging.getLogger("partnernet.audit")

_SECRET_WORDS = ("password", "token", "secret", "key", "signature", "authorization")


def escape(value: Any) -> str:
    """One printable line: control characters (CR, LF, ...) become visible escapes."""
    text = str(value)
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)[:500]


def _clean(fields: dict[str, Any]) -> dict[str, str]:
    return {k: "[redacted]" if any(w in k.lower() for w in _SECRET_WORDS) else escape(v)
            for k, v in fields.items() if v is not None}


def audit(action: str, *, user_id: int | None = None, merchant_id: int | None = None,
          persist: bool = True, **fields: Any) -> None:
    """Record an audit event: always logged; with ``persist`` also added to the session
    (it is saved by the caller's commit). Denials are logged only, so a flood of bad
    requests cannot fill the database."""
    from partnernet.accounts.models import AuditEvent
    from partnernet.extensions import db

    ip = request.remote_addr if has_request_context() else None
    detail = _clean(fields)
    log.info("%s user=%s merchant=%s ip=%s %s", escape(action), user_id, merchant_id,
             escape(ip), json.dumps(detail, sort_keys=True))
    if persist:
        db.session.add(AuditEvent(action=action, user_id=user_id, merchant_id=merchant_id,
                                  ip=ip, detail=detail))

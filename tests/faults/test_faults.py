"""Fault tests: the database going away under postbacks, a worker SIGKILLed in the middle of
approve-matured and flush-clicks, and the clock jumping. Each rerun converges: nothing lost,
nothing doubled, the ledger still verifies.

The database and process faults need PostgreSQL (CI); on SQLite they skip with a reason.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from partnernet import clock
from partnernet.extensions import db
from tests.commission_helpers import NOW
from tests.factories import make_click_row, make_merchant, make_offer, make_partner

ROOT = Path(__file__).resolve().parents[2]
STATS_FILE = os.environ.get("PARTNERNET_RELIABILITY_STATS")


def record(name: str, figures: dict[str, Any]) -> None:
    """Hand figures to scripts/reliability_report.py when it runs the suite."""
    if STATS_FILE:
        with Path(STATS_FILE).open("a", encoding="utf-8") as out:
            out.write(json.dumps({"suite": name, **figures}) + "\n")


@pytest.fixture
def needs_postgres(pg_url: str | None) -> str:
    if not pg_url:
        pytest.skip("fault tests of the database and of killed workers run on PostgreSQL (CI)")
    return pg_url


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


def count(model: Any) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def ledger_verifies() -> None:
    from flask import current_app

    result = current_app.test_cli_runner().invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output


def test_database_down_during_postbacks_is_503_then_the_retry_lands_once(app: Any,
                                                                          needs_postgres: str) -> None:
    from partnernet.commissions.models import Commission, LedgerEntry
    from partnernet.conversions.models import Conversion

    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id)
    clicks = [make_click_row(offer, partner.id) for _ in range(5)]
    from tests.conftest import make_app

    # A second app whose database does not answer (the shared server is never restarted).
    down = make_app(f"postgresql://postgres@127.0.0.1:{closed_port()}/gone")
    refused = []
    for i, click in enumerate(clicks):
        answer = down.test_client().get("/postback", query_string={
            "token": shop.postback_token, "click_id": click.id, "order_id": f"DOWN-{i}", "amount": "20.00"})
        refused.append(answer.status_code)
        assert answer.status_code == 503, answer.get_data(as_text=True)[:300]
        body = answer.get_json()
        assert body["error"]["code"] == "service_unavailable"
        assert answer.headers.get("Retry-After")
    with down.app_context():
        db.session.remove()
        db.engine.dispose()
    assert (count(Conversion), count(Commission), count(LedgerEntry)) == (0, 0, 0)  # nothing half-written
    client = app.test_client()
    for _ in range(2):  # the store retries; a second retry is a duplicate
        for i, click in enumerate(clicks):
            answer = client.get("/postback", query_string={
                "token": shop.postback_token, "click_id": click.id, "order_id": f"DOWN-{i}",
                "amount": "20.00"})
            assert answer.status_code == 200, answer.get_json()
    assert count(Conversion) == 5 and count(Commission) == 5
    ledger_verifies()
    record("fault-database-down-postbacks", {"refused_503": len(refused), "retried": 10,
                                              "conversions": 5, "lost": 0, "doubled": 0})


def test_a_connection_lost_so_badly_the_rollback_fails_is_still_503(app: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The 503 handler's fallback when even the rollback fails: the session is invalidated
    (``Session.invalidate``, reached through the scoped session's ``db.session()``) and the
    answer is still the contract's 503 with Retry-After, not a second error."""
    from sqlalchemy.exc import OperationalError

    def rollback_on_a_dead_connection() -> None:
        raise OperationalError("ROLLBACK", {}, Exception("server closed the connection unexpectedly"))

    @app.get("/api/test-database-gone")
    def database_gone() -> Any:
        monkeypatch.setattr(db.session(), "rollback", rollback_on_a_dead_connection)
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))

    answer = app.test_client().get("/api/test-database-gone")
    assert answer.status_code == 503, answer.get_data(as_text=True)[:300]
    assert answer.get_json()["error"]["code"] == "service_unavailable"
    assert answer.headers.get("Retry-After") == "5"


KILLER = textwrap.dedent("""
    import os, signal, sys
    from partnernet.app import create_app
    from partnernet.extensions import db
    from partnernet import clock
    from datetime import datetime
    from sqlalchemy import event

    app = create_app({"TESTING": True, "DATABASE_URL": sys.argv[1], "SECRET_KEY": "k" * 40,
                      "REDIS_URL": None, "JOBS_INLINE": True})
    kill_after = int(sys.argv[2])
    clock.freeze(datetime.fromisoformat(sys.argv[3]))
    with app.app_context():
        commits = {"n": 0}

        @event.listens_for(db.session, "after_commit")
        def die(session):
            commits["n"] += 1
            if commits["n"] >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)  # the worker dies between two batches

        from partnernet.commissions.services import approve_matured
        approve_matured(batch_size=3)
""")


def test_worker_sigkilled_during_approve_matured_then_the_rerun_converges(app: Any, needs_postgres: str,
                                                                         tmp_path: Path) -> None:
    from partnernet.commissions.models import Commission, LedgerEntry
    from partnernet.commissions.services import approve_matured

    clock.freeze(NOW)
    shop = make_merchant()
    offer = make_offer(shop.merchant.id, hold_days=1)
    partner = make_partner(shop.merchant.id)
    client = app.test_client()
    for i in range(10):
        click = make_click_row(offer, partner.id, at=NOW - timedelta(hours=1))
        answer = client.get("/postback", query_string={
            "token": shop.postback_token, "click_id": click.id, "order_id": f"K-{i}", "amount": "10.00"})
        assert answer.status_code == 200, answer.get_json()
    later = NOW + timedelta(days=2)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run([sys.executable, str(script), needs_postgres, "2", later.isoformat()],
                          cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-500:]
    db.session.expire_all()
    half = db.session.scalar(select(func.count()).select_from(Commission)
                             .where(Commission.status == "approved"))
    assert 0 < half < 10  # died half way
    clock.freeze(later)
    approve_matured()
    approve_matured()  # a second rerun finds nothing to do
    db.session.expire_all()
    statuses = [c.status for c in db.session.scalars(select(Commission))]
    assert statuses == ["approved"] * 10
    # Each approval posted its ledger entries once: the ledger still verifies.
    assert count(LedgerEntry) >= 10
    ledger_verifies()
    record("fault-sigkill-approve-matured", {"commissions": 10, "approved_before_kill": half,
                                              "after_rerun": 10, "doubled": 0})


def test_clock_jumping_back_and_forward_approves_nothing_early_or_twice(app: Any) -> None:
    from partnernet.commissions.models import Commission
    from partnernet.commissions.services import approve_matured

    clock.freeze(NOW)
    shop = make_merchant()
    offer = make_offer(shop.merchant.id, hold_days=7)
    partner = make_partner(shop.merchant.id)
    click = make_click_row(offer, partner.id, at=NOW - timedelta(hours=1))
    answer = app.test_client().get("/postback", query_string={
        "token": shop.postback_token, "click_id": click.id, "order_id": "J-1", "amount": "10.00"})
    assert answer.status_code == 200
    clock.freeze(NOW - timedelta(days=30))  # NTP step backwards
    assert approve_matured() == 0
    clock.freeze(NOW + timedelta(days=3))
    assert approve_matured() == 0  # still inside the hold
    clock.freeze(NOW + timedelta(days=8))  # jump forward past the hold
    assert approve_matured() == 1
    clock.freeze(NOW - timedelta(days=1))  # and back again
    assert approve_matured() == 0
    clock.freeze(NOW + timedelta(days=9))
    assert approve_matured() == 0
    db.session.expire_all()
    assert db.session.scalar(select(Commission)).status == "approved"
    ledger_verifies()
    record("fault-clock-jump", {"jumps": 5, "approved": 1, "doubled": 0})


def test_a_click_postback_arriving_before_its_click_by_clock_skew_is_refused_cleanly(app: Any) -> None:
    """A click stamped in the future (another host's clock ahead) is not a 500."""
    clock.freeze(NOW)
    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id)
    click = make_click_row(offer, partner.id, at=NOW + timedelta(minutes=5))
    answer = app.test_client().get("/postback", query_string={
        "token": shop.postback_token, "click_id": click.id, "order_id": "SKEW-1", "amount": "10.00"})
    assert answer.status_code < 500, answer.get_data(as_text=True)[:300]
    if answer.status_code >= 400:
        assert set(answer.get_json()) == {"error"}


FLUSH_KILLER = textwrap.dedent("""
    import os, signal, sys
    from partnernet.app import create_app
    from partnernet.extensions import db
    from sqlalchemy import event

    app = create_app({"TESTING": True, "DATABASE_URL": sys.argv[1], "REDIS_URL": sys.argv[2],
                      "REDIS_KEY_PREFIX": sys.argv[3], "SECRET_KEY": "k" * 40,
                      "FLUSH_WORKERS": int(sys.argv[5])})
    with app.app_context():
        @event.listens_for(db.session, "after_commit")  # every session: the workers' too
        def die(session):
            # A batch is committed; the stream is not trimmed yet.
            os.kill(os.getpid(), signal.SIGKILL)

        from partnernet.links.buffer import flush_clicks
        flush_clicks(batch_size=int(sys.argv[4]))
""")


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_sigkilled_during_flush_clicks_then_the_rerun_converges(app: Any, needs_postgres: str,
                                                                      redis_url: str | None,
                                                                      tmp_path: Path, workers: int) -> None:
    """A flush killed between its COPY commit and the stream trim: the rerun (once the killed
    flusher's lock expires) stores every click exactly once. Two workers COPY two batches of
    20 at once (40 entries cut evenly): either may be the one committed at the kill (or both,
    the other's commit already on its way)."""
    from urllib.parse import parse_qs, urlsplit

    from partnernet.links import buffer
    from partnernet.links.models import Click, Link

    if not redis_url:
        pytest.skip("the click buffer needs Redis")
    shop = make_merchant()
    offer = make_offer(shop.merchant.id)
    partner = make_partner(shop.merchant.id)
    code = db.session.get(Link, make_click_row(offer, partner.id).link_id).code
    client = app.test_client()
    answered = set()
    for i in range(40):
        answer = client.get(f"/r/{code}", headers={"User-Agent": "Mozilla/5.0 Firefox/128.0"},
                            environ_base={"REMOTE_ADDR": f"198.51.100.{i}"})
        assert answer.status_code == 302
        answered.add(parse_qs(urlsplit(answer.headers["Location"]).query)["click_id"][0])
    assert buffer.buffer_length() == 40
    before = count(Click)  # the seeded click
    script = tmp_path / "flush_killer.py"
    script.write_text(FLUSH_KILLER)
    proc = subprocess.run([sys.executable, str(script), needs_postgres, redis_url,
                           app.config["REDIS_KEY_PREFIX"], "25", str(workers)],
                          cwd=ROOT, capture_output=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-500:]
    stored_at_kill = count(Click) - before
    assert stored_at_kill in ({25} if workers == 1 else {20, 40})  # whole batches
    assert buffer.buffer_length() == 40  # committed, not trimmed
    # The dead flusher's lock still stands: a rerun now does nothing rather than race it...
    assert buffer.flush_clicks().get("skipped")
    # ...and once it expires (fast-forwarded here) the rerun converges.
    buffer.click_redis().pexpire(buffer.CLICKS.key("flush-lock"), 1)
    time.sleep(0.05)
    result = buffer.flush_clicks()
    assert result["flushed"] == 40 and buffer.buffer_length() == 0
    db.session.expire_all()
    stored = set(db.session.scalars(select(Click.id)))
    assert answered <= stored and count(Click) - before == 40  # every 302 stored, none twice
    suite = "fault-sigkill-flush-clicks" + ("" if workers == 1 else f"-{workers}-workers")
    record(suite, {"clicks_answered_302": len(answered), "stored_before_kill": stored_at_kill,
                   "stored_after_rerun": count(Click) - before, "missing": len(answered - stored)})

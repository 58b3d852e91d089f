"""Payouts across processes: a worker SIGKILLed mid-call, two runs at once, Redis flushed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import ON_POSTGRES
from tests.factories import make_merchant, make_offer, make_partner
from tests.payout_helpers import (
    approved_commission,
    assert_ledger_consistent,
    onboard,
    payout,
    payouts,
    stripe_config,
)

ROOT = Path(__file__).resolve().parents[2]


FAKE_STRIPE_HANG_SECONDS = 60


def _wait_for(predicate, seconds=20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _retry_later(minutes=90):
    from partnernet import clock
    from partnernet.payouts.services import retry_payouts

    clock.freeze(clock.now() + timedelta(minutes=minutes))
    try:
        return retry_payouts()
    finally:
        clock.freeze(None)


JOB_SCRIPT = """
import sys
from partnernet.app import create_app
from partnernet.jobs import run_in_app
app = create_app({"DATABASE_URL": sys.argv[1], "STRIPE_SECRET_KEY": "sk_test_fake",
                  "STRIPE_API_BASE": sys.argv[2], "STRIPE_MAX_NETWORK_RETRIES": 0,
                  "STRIPE_TIMEOUT_SECONDS": 120, "SECRET_KEY": "x" * 40, "REDIS_URL": None})
with app.app_context():
    print("result", run_in_app("partnernet.payouts.tasks:send_payout", int(sys.argv[3])), flush=True)
"""


def test_worker_killed_after_the_transfer_and_before_the_commit(app_factory, database_url, fake):
    """A real SIGKILL of the process running the payout job, while Stripe has made the
    transfer and not yet answered; ``retry-payouts`` then ends with one transfer, paid."""
    app = app_factory(**stripe_config(fake.url))
    with app.app_context():
        shop = make_merchant()
        partner = make_partner(shop.merchant.id)
        onboard(partner, fake)
        approved_commission(shop.merchant.id, partner.id, make_offer(shop.merchant.id).id, 25000)
        fake.fail_next("POST /v1/transfers", "500")  # first attempt: nothing made, unknown to us
        from partnernet.payouts.services import create_run

        create_run(shop.merchant.id)
        [p] = payouts()
        assert p.status == "processing" and fake.transfers_for(p.id) == []

        fake.fail_next("POST /v1/transfers", "hang_after_commit")
        worker = subprocess.Popen(
            [sys.executable, "-c", JOB_SCRIPT, database_url, fake.url, str(p.id)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            assert _wait_for(lambda: len(fake.transfers_for(p.id)) == 1), worker.stderr
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.wait(10) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
            worker.stdout.close()
            worker.stderr.close()
        fake.release()
        p = payout(p.id)
        assert p.status == "processing" and p.attempts == 2 and p.transfer_id is None

        assert _retry_later()["enqueued"] == 1

        p = payout(p.id)
        [transfer] = fake.transfers_for(p.id)
        assert p.status == "paid" and p.transfer_id == transfer["id"] and transfer["amount"] == 25000
        assert_ledger_consistent(fake)


@pytest.mark.skipif(not ON_POSTGRES, reason="SQLite has one writer: concurrent runs need PostgreSQL")
def test_two_runs_at_once_create_no_overlapping_payouts(app_factory):
    app = app_factory()  # manual rail: the race is in the claim, not in Stripe
    with app.app_context():
        shop = make_merchant()
        offer = make_offer(shop.merchant.id)
        partners = [make_partner(shop.merchant.id) for _ in range(12)]
        for i, partner in enumerate(partners):
            for amount in (3000, 2000 + i):
                approved_commission(shop.merchant.id, partner.id, offer.id, amount)
        merchant_id = shop.merchant.id
        partner_ids = sorted(p.id for p in partners)

    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def one_run():
        from partnernet.extensions import db
        from partnernet.payouts.services import create_run

        with app.app_context():
            try:
                barrier.wait()
                create_run(merchant_id)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=one_run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with app.app_context():
        made = payouts(merchant_id)
        assert sorted(p.partner_id for p in made) == partner_ids
        assert {p.amount_minor for p in made} == {5000 + i for i in range(12)}
        assert_ledger_consistent()


@pytest.fixture
def private_redis(tmp_path):
    """A Redis server of this test's own (FLUSHALL must not wipe other people's data)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    url = f"redis://127.0.0.1:{port}/0"
    conn = redis.Redis.from_url(url)
    try:
        assert _wait_for(lambda: _pings(conn), 10), "private redis-server did not start"
        yield url
    finally:
        conn.close()
        proc.terminate()
        proc.wait(10)


def _pings(conn):
    try:
        return bool(conn.ping())
    except Exception:  # noqa: BLE001
        return False


def test_redis_flushed_while_payouts_are_queued_the_sweeper_requeues(private_redis, fake,
                                                                     app_factory):
    import redis
    from rq import SimpleWorker

    from partnernet import jobs
    from partnernet.payouts.services import create_run

    app = app_factory(redis_url=private_redis, JOBS_INLINE=False, **stripe_config(fake.url))
    with app.app_context():
        shop = make_merchant()
        offer = make_offer(shop.merchant.id)
        partners = [make_partner(shop.merchant.id) for _ in range(3)]
        for partner in partners:
            onboard(partner, fake)
            approved_commission(shop.merchant.id, partner.id, offer.id, 5100)
        create_run(shop.merchant.id)
        assert jobs.queue("payouts").count == 3
        assert {p.status for p in payouts()} == {"queued"}

        redis.Redis.from_url(private_redis).flushall()
        assert jobs.queue("payouts").count == 0

        assert _retry_later(minutes=3)["enqueued"] == 3
        assert jobs.queue("payouts").count == 3
        SimpleWorker([jobs.queue("payouts")], connection=jobs.redis_connection()).work(burst=True)

        assert {p.status for p in payouts()} == {"paid"}
        for p in payouts():
            assert len(fake.transfers_for(p.id)) == 1
        assert _retry_later()["enqueued"] == 0
        assert_ledger_consistent(fake)


def test_rq_worker_killed_mid_transfer_then_the_sweeper_finishes(private_redis, fake, app_factory,
                                                                 database_url):
    """The same with the production runner: ``partnernet worker --burst`` SIGKILLed while
    Stripe holds the answer to a transfer it has made."""
    from rq import SimpleWorker

    from partnernet import jobs
    from partnernet.payouts.services import create_run

    app = app_factory(redis_url=private_redis, JOBS_INLINE=False, **stripe_config(fake.url))
    with app.app_context():
        shop = make_merchant()
        partner = make_partner(shop.merchant.id)
        onboard(partner, fake)
        approved_commission(shop.merchant.id, partner.id, make_offer(shop.merchant.id).id, 4321 * 2)
        create_run(shop.merchant.id)
        [p] = payouts()
        assert p.status == "queued" and jobs.queue("payouts").count == 1

        fake.fail_next("POST /v1/transfers", "hang_after_commit")
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": private_redis,
               "PARTNERNET_QUEUE_PREFIX": app.config["RQ_QUEUE_PREFIX"],
               "PARTNERNET_REDIS_PREFIX": app.config["REDIS_KEY_PREFIX"],
               "STRIPE_SECRET_KEY": "sk_test_fake", "STRIPE_API_BASE": fake.url,
               "STRIPE_WEBHOOK_SECRET": "whsec_x", "STRIPE_MAX_NETWORK_RETRIES": "0",
               "STRIPE_TIMEOUT_SECONDS": "120", "SECRET_KEY": "k" * 40, "PYTHONPATH": str(ROOT)}
        worker = subprocess.Popen([str(Path(sys.executable).parent / "partnernet"), "worker", "--burst"],
                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert _wait_for(lambda: len(fake.transfers_for(p.id)) == 1, 30)
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.wait(10) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
            worker.stderr.close()
        fake.release()
        p = payout(p.id)
        assert p.status == "processing" and p.transfer_id is None and p.attempts == 1

        assert _retry_later()["enqueued"] == 1
        SimpleWorker([jobs.queue("payouts")], connection=jobs.redis_connection()).work(burst=True)

        p = payout(p.id)
        assert p.status == "paid" and [t["id"] for t in fake.transfers_for(p.id)] == [p.transfer_id]
        assert_ledger_consistent(fake)

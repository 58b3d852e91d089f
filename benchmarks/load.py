"""Load test: a realistic traffic mix for 60 s against gunicorn + PostgreSQL + Redis, then nothing lost.

Usage: .venv/bin/python benchmarks/load.py [--seconds 60] [--clients 2] [--threads 4]
       [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--json benchmarks/results/load.json]

Needs PostgreSQL (a database of its own is created and dropped) and ``redis-server`` (a
private one on a free loopback port, AOF ``everysec``). Same server settings as
``benchmarks/postback.py``: ``gunicorn wsgi:app`` with 2 gthread workers x 4 threads, the
real rate limiter with limits too high to trip.

The load generator is ``--clients`` Python processes with ``--threads`` keep-alive
connections each (closed loop: each connection sends its next request when the last one
is answered). Each request is drawn at random:

* 90 % ``GET /r/<code>`` over 20 partners' links (browser User-Agent);
* 8 % postbacks: 6 points new orders (each for a click id this connection got from an
  earlier redirect, so attribution reads the Redis buffer or the database as in
  production), 2 points duplicates (an order this connection already got accepted, sent
  again unchanged: it must answer ``duplicate: true`` with the same conversion id);
* 2 % merchant API reads with the API key (offers, conversions, commissions, a partner's
  balance, reports), in rotation.

The ``flush-clicks`` job runs every 5 s beside the server (as the worker would). After
the run it flushes the rest and checks, in PostgreSQL: every click id answered in a 302
``Location`` is in ``clicks``; every conversion id answered to a new postback is in
``conversions`` with its order id; no order has two conversions; no conversion has two
commissions; the count of conversions equals the count of accepted new orders (the
duplicates added none). Errors (any other status, a socket error, a duplicate answered
as new) must be 0. Prints a table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing as mp
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.redirect import (  # noqa: E402 - the path is set up above
    SECRET,
    UA,
    RedisServer,
    create_database,
    drop_database,
    free_port,
    stop,
    wait_healthy,
)

ENDPOINTS = ("redirect", "postback_new", "postback_duplicate", "api_read")
EXPECTED = {"redirect": 302, "postback_new": 200, "postback_duplicate": 200, "api_read": 200}


# -- the load generator ----------------------------------------------------------------------

def client_process(index: int, port: int, plan: dict[str, Any], seconds: float, threads: int,
                   queue: mp.Queue) -> None:
    """One client process: ``threads`` keep-alive connections drawing requests from the mix."""
    lock = threading.Lock()
    result: dict[str, Any] = {
        "latency_ms": {name: [] for name in ENDPOINTS},
        "statuses": {name: {} for name in ENDPOINTS},
        "errors": [], "click_ids": [], "accepted": {}, "duplicates": 0, "duplicate_mismatches": 0,
    }
    deadline = time.monotonic() + seconds
    codes: list[str] = plan["codes"]
    api_paths: list[str] = plan["api_paths"]
    api_headers = {"Authorization": f"Bearer {plan['api_key']}", "Accept": "application/json"}
    redirect_headers = {"User-Agent": UA, "Accept": "text/html"}
    new_cut = plan["redirect_percent"] + plan["new_percent"]
    dup_cut = new_cut + plan["duplicate_percent"]

    def loop(thread: int) -> None:
        rng = random.Random(f"{plan['run']}-{index}-{thread}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latency: dict[str, list[float]] = {name: [] for name in ENDPOINTS}
        statuses: dict[str, dict[int, int]] = {name: {} for name in ENDPOINTS}
        errors: list[str] = []
        clicks: list[str] = []
        accepted: dict[str, tuple[str, str, str]] = {}  # order id -> (conversion id, click id, amount)
        accepted_orders: list[str] = []
        duplicates = mismatches = 0
        n = 0
        while time.monotonic() < deadline:
            roll = rng.random() * 100
            if roll < plan["redirect_percent"] or (roll < new_cut and not clicks) \
                    or (new_cut <= roll < dup_cut and not accepted_orders and not clicks):
                kind = "redirect"
            elif roll < new_cut or (roll < dup_cut and not accepted_orders):
                kind = "postback_new"
            elif roll < dup_cut:
                kind = "postback_duplicate"
            else:
                kind = "api_read"
            headers: dict[str, str] = {}
            order = ""
            if kind == "redirect":
                path = f"/r/{codes[n % len(codes)]}?sub1=load{thread}"
                headers = redirect_headers
            elif kind == "postback_new":
                order = f"{plan['run']}-{index}-{thread}-{n}"
                click_id = clicks[-1 - rng.randrange(min(len(clicks), 500))]
                amount = f"{rng.randrange(500, 50000) // 100}.{rng.randrange(100):02d}"
                path = "/postback?" + urlencode({"token": plan["token"], "click_id": click_id,
                                                 "order_id": order, "amount": amount})
            elif kind == "postback_duplicate":
                order = accepted_orders[rng.randrange(len(accepted_orders))]
                _, click_id, amount = accepted[order]
                path = "/postback?" + urlencode({"token": plan["token"], "click_id": click_id,
                                                 "order_id": order, "amount": amount})
            else:
                path = api_paths[n % len(api_paths)]
                headers = api_headers
            n += 1
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{kind}: {exc.__class__.__name__}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            latency[kind].append((time.perf_counter() - started) * 1000)
            duplicates += kind == "postback_duplicate"
            statuses[kind][response.status] = statuses[kind].get(response.status, 0) + 1
            if response.status != EXPECTED[kind]:
                errors.append(f"{kind}: HTTP {response.status} {body[:200]!r}")
            elif kind == "redirect":
                location = response.getheader("Location", "")
                clicks.append(location.rsplit("click_id=", 1)[1].split("&", 1)[0])
            elif kind == "postback_new":
                answer = json.loads(body)
                if answer.get("duplicate"):
                    errors.append(f"{kind}: a new order answered as a duplicate: {answer}")
                else:
                    accepted[order] = (str(answer["conversion_id"]), click_id, amount)
                    accepted_orders.append(order)
            elif kind == "postback_duplicate":
                answer = json.loads(body)
                if not answer.get("duplicate") or str(answer.get("conversion_id")) != accepted[order][0]:
                    mismatches += 1
                    errors.append(f"{kind}: a repeated order not answered as its duplicate: {answer}")
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.close()
        with lock:
            for name in ENDPOINTS:
                result["latency_ms"][name].extend(latency[name])
                for status, count in statuses[name].items():
                    result["statuses"][name][status] = result["statuses"][name].get(status, 0) + count
            result["errors"].extend(errors)
            result["click_ids"].extend(clicks)
            result["accepted"].update({o: v[0] for o, v in accepted.items()})
            result["duplicates"] += duplicates
            result["duplicate_mismatches"] += mismatches

    workers = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put(result)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) of ``values``, or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return round(ordered[rank], 2)


# -- set-up and the after-check --------------------------------------------------------------

def seed(db_url: str, partners: int) -> dict[str, Any]:
    """A merchant (API key, postback token), a 10 % CPS offer, partners with a link each."""
    from partnernet import dbsetup
    from partnernet.accounts.services import create_merchant, create_partner
    from partnernet.app import create_app
    from partnernet.extensions import db
    from partnernet.links.services import create_link
    from partnernet.offers.schemas import OfferIn
    from partnernet.offers.services import create_offer

    app = create_app({"DATABASE_URL": db_url, "REDIS_URL": None, "SECRET_KEY": SECRET,
                      "TESTING": True})
    with app.app_context():
        db.create_all()
        dbsetup.install(db.engine)
        shop = create_merchant("Load shop", f"load-{secrets.token_hex(3)}@shop.example")
        offer = create_offer(shop.merchant.id, OfferIn().load({
            "name": "Load", "landing_url": "https://shop.example/landing?src=aff",
            "plans": [{"event": "sale", "type": "cps", "percent": "10"}]}))
        codes, partner_ids = [], []
        for p in range(partners):
            partner, _ = create_partner(shop.merchant.id, email=f"load{p}@partner.example",
                                        name=f"Load partner {p}")
            link = create_link(shop.merchant.id, {"offer_id": offer.id, "partner_id": partner.id})
            codes.append(str(link.code))
            partner_ids.append(partner.id)
        plan = {"token": shop.postback_token, "api_key": shop.api_key, "codes": codes,
                "api_paths": ["/api/v1/offers", "/api/v1/conversions?per_page=20",
                              "/api/v1/commissions?per_page=20",
                              f"/api/v1/partners/{partner_ids[0]}/balance",
                              "/api/v1/reports?group_by=partner"]}
        db.engine.dispose()
    return plan


def code_version() -> dict[str, Any]:
    """Which code ran: the commit, and whether the application's files differ from it."""
    marker = ROOT / ".commit"
    if marker.exists():  # an export of a commit (scripts/reliability_report.py makes one)
        return {"commit": marker.read_text().strip(), "uncommitted_changes": 0}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "partnernet", "wsgi.py"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "uncommitted_changes": None}
    return {"commit": commit, "uncommitted_changes": len(dirty)}


def flusher(app: Any, stop_event: threading.Event, every: float, counter: dict[str, int]) -> threading.Thread:
    """The worker's flush-clicks job every few seconds, as in production."""
    from partnernet.links import buffer

    def loop() -> None:
        with app.app_context():
            while not stop_event.wait(every):
                counter["runs"] += 1
                counter["flushed"] += int(buffer.flush_clicks()["flushed"])

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def after_check(app: Any, click_ids: list[str], accepted: dict[str, str]) -> dict[str, Any]:
    """Flush what is left, then compare the database with the answers the clients received."""
    from sqlalchemy import func, select

    from partnernet.commissions.models import Commission
    from partnernet.conversions.models import Conversion
    from partnernet.extensions import db
    from partnernet.links import buffer
    from partnernet.links.models import Click

    with app.app_context():
        flushed = 0
        while True:
            n = int(buffer.flush_clicks(max_batches=10_000)["flushed"])
            flushed += n
            if not n:
                break
        stored_clicks = set(db.session.scalars(select(Click.id)))
        conversions = {str(cid): order for cid, order in db.session.execute(
            select(Conversion.id, Conversion.order_id))}
        orders_with_two = db.session.scalar(select(func.count()).select_from(
            select(Conversion.merchant_id, Conversion.event, Conversion.order_id)
            .group_by(Conversion.merchant_id, Conversion.event, Conversion.order_id)
            .having(func.count() > 1).subquery())) or 0
        commissions = db.session.scalar(select(func.count()).select_from(Commission)) or 0
        conversions_with_two = db.session.scalar(select(func.count()).select_from(
            select(Commission.conversion_id).group_by(Commission.conversion_id)
            .having(func.count() > 1).subquery())) or 0
        buffered_left = buffer.buffer_length()
        db.session.remove()
    missing_clicks = [c for c in click_ids if c not in stored_clicks]
    missing_conversions = [o for o, cid in accepted.items() if conversions.get(cid) != o]
    return {
        "flushed_after_run": flushed,
        "buffer_left": buffered_left,
        "clicks_answered_302": len(click_ids),
        "clicks_distinct_answered": len(set(click_ids)),
        "clicks_in_database": len(stored_clicks),
        "clicks_missing": len(missing_clicks),
        "conversions_accepted": len(accepted),
        "conversions_in_database": len(conversions),
        "conversions_missing": len(missing_conversions),
        "orders_with_two_conversions": int(orders_with_two),
        "commissions_in_database": int(commissions),
        "conversions_with_two_commissions": int(conversions_with_two),
    }


# -- main ------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the run")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="keep-alive connections per client")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--partners", type=int, default=20)
    parser.add_argument("--flush-every", type=float, default=5.0, help="seconds between flush-clicks runs")
    parser.add_argument("--pg", default=os.environ.get("DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/load.json"),
                        help="where to write the figures (a timestamped copy goes beside it)")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (Debian: apt-get install -y redis-server)")
        return 2

    started_at = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="pn-load-"))
    redis = RedisServer(tmp)
    redis.start()
    db_url = create_database(args.pg)
    prefix = f"pnload:{secrets.token_hex(4)}:"
    server: subprocess.Popen[bytes] | None = None
    try:
        plan = seed(db_url, args.partners)
        plan.update({"run": secrets.token_hex(3), "redirect_percent": 90.0, "new_percent": 6.0,
                     "duplicate_percent": 2.0})
        from partnernet.app import create_app

        app = create_app({"DATABASE_URL": db_url, "REDIS_URL": redis.url, "SECRET_KEY": SECRET,
                          "REDIS_KEY_PREFIX": prefix, "RATELIMIT_ENABLED": False})
        port = free_port()
        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PARTNERNET_", "REDIS_URL", "DATABASE_URL"))}
        env = {**base_env, "DATABASE_URL": db_url, "REDIS_URL": redis.url, "SECRET_KEY": SECRET,
               "PARTNERNET_REDIS_PREFIX": prefix, "PARTNERNET_QUEUE_PREFIX": prefix.rstrip(":"),
               "PARTNERNET_POSTBACK_RATE_LIMIT": "100000000 per minute", "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-k", "gthread",
               "--threads", str(args.worker_threads), "-b", f"127.0.0.1:{port}", "--timeout", "60",
               "--log-level", "warning", "wsgi:app"]
        server = subprocess.Popen(cmd, cwd=ROOT, env=env)
        wait_healthy(port, server)
        load_start = os.getloadavg()[0]

        print(f"gunicorn {args.workers} gthread workers x {args.worker_threads} threads; clients "
              f"{args.clients} processes x {args.threads} keep-alive connections; {args.seconds:.0f} s; "
              f"mix 90 % redirect / 6 % new postback / 2 % duplicate postback / 2 % API read; "
              f"load average at start {load_start:.1f}", flush=True)
        counter = {"runs": 0, "flushed": 0}
        stop_flush = threading.Event()
        flush_thread = flusher(app, stop_flush, args.flush_every, counter)
        queue: mp.Queue = mp.Queue()
        procs = [mp.Process(target=client_process, args=(i, port, plan, args.seconds, args.threads, queue))
                 for i in range(args.clients)]
        began = time.monotonic()
        for p in procs:
            p.start()
        parts = [queue.get(timeout=args.seconds + 300) for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.monotonic() - began
        load_end = os.getloadavg()[0]
        stop_flush.set()
        flush_thread.join(timeout=60)
        stop(server)
        server = None

        latency = {name: [v for part in parts for v in part["latency_ms"][name]] for name in ENDPOINTS}
        statuses: dict[str, dict[str, int]] = {name: {} for name in ENDPOINTS}
        for part in parts:
            for name in ENDPOINTS:
                for status, count in part["statuses"][name].items():
                    statuses[name][str(status)] = statuses[name].get(str(status), 0) + count
        errors = [e for part in parts for e in part["errors"]]
        click_ids = [c for part in parts for c in part["click_ids"]]
        accepted: dict[str, str] = {}
        for part in parts:
            accepted.update(part["accepted"])
        total = sum(len(v) for v in latency.values()) + len(errors)
        per_endpoint = {name: {"requests": len(latency[name]),
                               "share_percent": round(100 * len(latency[name]) / max(total, 1), 2),
                               "req_per_s": round(len(latency[name]) / elapsed, 1),
                               "p50_ms": percentile(latency[name], 50),
                               "p99_ms": percentile(latency[name], 99),
                               "statuses": statuses[name]} for name in ENDPOINTS}
        check = after_check(app, click_ids, accepted)
        duplicates = sum(p["duplicates"] for p in parts)
        result: dict[str, Any] = {
            "started_at": started_at.isoformat(timespec="seconds"),
            "code": code_version(),
            "seconds": round(elapsed, 1),
            "setup": {"server": f"gunicorn -k gthread -w {args.workers} --threads {args.worker_threads}",
                      "clients": f"{args.clients} processes x {args.threads} keep-alive connections",
                      "database": "PostgreSQL", "redis": "private redis-server, AOF everysec",
                      "flush_every_s": args.flush_every, "partners": args.partners,
                      "load_average_start_end": [round(load_start, 1), round(load_end, 1)],
                      "cores": os.cpu_count()},
            "requests": total,
            "req_per_s": round(total / elapsed, 1),
            "endpoints": per_endpoint,
            "errors": len(errors),
            "error_samples": errors[:10],
            "duplicates_sent": duplicates,
            "duplicates_answered_as_new_or_other_id": sum(p["duplicate_mismatches"] for p in parts),
            "flush_runs_during": counter["runs"],
            "flushed_during": counter["flushed"],
            "database": check,
        }
        nothing_lost = (check["clicks_missing"] == 0 and check["conversions_missing"] == 0
                        and check["orders_with_two_conversions"] == 0
                        and check["conversions_with_two_commissions"] == 0
                        and check["conversions_in_database"] == check["conversions_accepted"]
                        and check["clicks_in_database"] == check["clicks_distinct_answered"])
        result["nothing_lost"] = nothing_lost
        result["ok"] = nothing_lost and not errors
    finally:
        if server is not None:
            stop(server)
        redis.stop()
        drop_database(args.pg, db_url)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\n{'endpoint':<20} {'requests':>9} {'share':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
          "  statuses")
    for name, row in result["endpoints"].items():
        print(f"{name:<20} {row['requests']:>9} {row['share_percent']:>6}% {row['req_per_s']:>8} "
              f"{row['p50_ms'] or '-':>8} {row['p99_ms'] or '-':>8}  {row['statuses']}")
    print(f"{'all':<20} {result['requests']:>9} {'':>7} {result['req_per_s']:>8}")
    print(f"\nerrors: {result['errors']} {result['error_samples'][:3]}")
    print(f"duplicates sent {duplicates}, answered as new or with another id: "
          f"{result['duplicates_answered_as_new_or_other_id']}")
    print(f"flush-clicks during the run: {counter['runs']} runs, {counter['flushed']} clicks")
    print("database after the final flush:")
    for key, value in result["database"].items():
        print(f"  {key:<36} {value}")
    print(f"\nnothing lost: {'yes' if result['nothing_lost'] else 'NO'}; errors 0: "
          f"{'yes' if not result['errors'] else 'NO'}")

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    out.write_text(text)
    stamped = out.with_name(f"{out.stem}-{started_at.strftime('%Y%m%dT%H%M%SZ')}{out.suffix}")
    stamped.write_text(text)
    print(f"figures written to {out} and {stamped}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

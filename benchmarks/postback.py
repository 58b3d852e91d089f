"""Postback throughput on PostgreSQL, against the click redirect measured in the same run.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/postback.py

It creates a database of its own on the server (dropped at the end), seeds a merchant,
an offer, 50 partners with a link and clicks each, 20,000 past sales with their commissions
(then ANALYZE, as a live database has statistics), the clicks table's day partitions over the
default click retention (395, as a database that has run a year has), starts
``gunicorn wsgi:app`` once, then drives four phases of equal length with the same client
processes:

1. the baseline: ``GET /r/<code>`` (the redirect; ``--baseline healthz`` or a missing
   redirect uses the bare ``/healthz`` Flask route instead, and says so);
2. new-conversion postbacks: every request a new order (raw log, dedupe insert,
   attribution, commission, outcome: two commits);
3. duplicate postbacks: orders already recorded in phase 2;
4. for context, the bare ``/healthz`` Flask route.

Phases 1 and 2 are cut into ``--rounds`` (4) alternating rounds and summed: the speed of a
shared host drifts over seconds, and alternating puts a drift on both sides of the ratio.

It prints requests/s per phase and the ratios the issue asks for:
new ÷ redirect ≥ 0.25 and duplicate ÷ new ≥ 1. Because the machine may be shared, it also
prints the CPU each request cost (from /proc, Linux only): in the gunicorn workers and in
the PostgreSQL backends of the benchmark's database; that figure does not depend on how
much CPU other processes took during the phase.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def drive(port: int, paths: list[str], seconds: float, threads: int, queue: mp.Queue) -> None:
    """Client process: ``threads`` keep-alive connections cycling through ``paths``."""
    import threading

    counts: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def loop(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = offset
        local: dict[int, int] = {}
        while time.monotonic() < deadline:
            path = paths[i % len(paths)]
            i += threads
            try:
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                local[response.status] = local.get(response.status, 0) + 1
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            except (OSError, http.client.HTTPException):
                local[0] = local.get(0, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()
        with lock:
            for status, n in local.items():
                counts[status] = counts.get(status, 0) + n

    workers = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put(counts)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (Linux /proc; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Tally:
    """Requests, time, statuses and watched CPU summed over the rounds of one kind of phase."""

    def __init__(self) -> None:
        self.requests = 0
        self.elapsed = 0.0
        self.statuses: dict[int, int] = {}
        self.cpu: dict[str, float] = {}

    def rate(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def cpu_ms(self) -> dict[str, float]:
        """CPU per request in ms by label, and their sum under "total"."""
        per = {label: seconds / self.requests * 1000 for label, seconds in self.cpu.items()} \
            if self.requests else {}
        return {**per, "total": sum(per.values())} if per else {}

    def line(self, name: str) -> str:
        per = self.cpu_ms()
        cpu = ("   CPU/request: " + ", ".join(f"{label} {ms:.2f} ms" for label, ms in per.items()
                                             if label != "total")) if per else ""
        return f"  {name:<22} {self.rate():8.0f} req/s   statuses {dict(sorted(self.statuses.items()))}{cpu}"


def phase(name: str, port: int, path_sets: list[list[str]], seconds: float,
          threads: int, watch: dict[str, object] | None = None,
          tally: Tally | None = None) -> tuple[float, dict[int, int]]:
    """Run one phase with one client process per path set; answer (req/s, status counts).

    ``watch``: {label: callable returning pids} whose CPU per request is printed too;
    ``tally`` adds the phase to a sum over rounds.
    """
    before = {label: (get, cpu_seconds(get())) for label, get in (watch or {}).items()}  # type: ignore[operator]
    queue: mp.Queue = mp.Queue()
    procs = [mp.Process(target=drive, args=(port, paths, seconds, threads, queue))
             for paths in path_sets]
    started = time.monotonic()
    for p in procs:
        p.start()
    totals: dict[int, int] = {}
    for _ in procs:
        for status, n in queue.get(timeout=seconds + 120).items():
            totals[status] = totals.get(status, 0) + n
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    rate = sum(totals.values()) / elapsed
    used = {label: cpu_seconds(get()) - start for label, (get, start) in before.items()}  # type: ignore[operator]
    if tally is not None:
        tally.requests += sum(totals.values())
        tally.elapsed += elapsed
        for status, n in totals.items():
            tally.statuses[status] = tally.statuses.get(status, 0) + n
        for label, seconds_used in used.items():
            tally.cpu[label] = tally.cpu.get(label, 0.0) + seconds_used
    cpu = ""
    if before and sum(totals.values()):
        n = sum(totals.values())
        per = {label: seconds_used / n * 1000 for label, seconds_used in used.items()}
        cpu = "   CPU/request: " + ", ".join(f"{label} {ms:.2f} ms" for label, ms in per.items())
    print(f"  {name:<22} {rate:8.0f} req/s   statuses {dict(sorted(totals.items()))}{cpu}",
          flush=True)
    return rate, totals


#: When ``seed_history``'s sale number g happened, by default: over the last 60 days.
LAST_60_DAYS = "now() - (g % 60) * interval '1 day' - (g % 1440) * interval '1 minute'"


def seed_history(merchant_id: int, offer_id: int, partner_ids: list[int], count: int,
                 first: int = 1, happened: str = LAST_60_DAYS) -> None:
    """The program's past: ``count`` sales (numbered from ``first``) with their commissions,
    each at ``happened`` (an SQL expression of g; by default over the last 60 days), then
    ANALYZE — a live database has both, so the dedupe look-up, the outlier rule's amounts and
    the tier counts run against a real table with real statistics, not an empty one (whose
    plans would be made for zero rows and kept). Called again, it adds to the history."""
    from sqlalchemy import text

    from partnernet.extensions import db

    db.session.execute(text(
        "INSERT INTO conversions (merchant_id, offer_id, partner_id, event, order_id, amount_minor, "
        " currency, refunded_minor, status, created_at, updated_at) "
        "SELECT :m, :o, (:p)[1 + g % cardinality(:p)], 'sale', 'history-' || g, 1000 + g % 9000, "
        f" 'USD', 0, 'approved', {happened}, {happened} "  # noqa: S608 - an expression from the caller's code
        "FROM generate_series(CAST(:a AS bigint), CAST(:b AS bigint)) AS g"),
        {"m": merchant_id, "o": offer_id, "p": partner_ids, "a": first, "b": first + count - 1})
    db.session.execute(text(
        "INSERT INTO commissions (merchant_id, partner_id, offer_id, conversion_id, kind, amount_minor, "
        " currency, reversed_minor, status, hold_until, flags, created_at, updated_at) "
        "SELECT merchant_id, partner_id, offer_id, id, 'conversion', amount_minor / 10, currency, 0, "
        " 'approved', created_at + interval '30 days', '[]', created_at, created_at "
        "FROM conversions c WHERE merchant_id = :m "
        " AND NOT EXISTS (SELECT 1 FROM commissions k WHERE k.conversion_id = c.id)"), {"m": merchant_id})
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def seed(url: str, clicks: int, partners: int = 50, history: int = 20_000,
         click_days: int = 395) -> dict[str, object]:
    """Schema and data: a merchant, an offer (10 % cps), partners, their links and clicks, and
    the program's past sales (``seed_history``). The clicks table has the day partitions a live
    database keeps: one a day over the default click retention (``click_days``)."""
    from datetime import timedelta

    from partnernet import clock, dbsetup, tokens
    from partnernet.accounts.services import create_merchant, create_partner
    from partnernet.app import create_app
    from partnernet.extensions import db
    from partnernet.links import partitions
    from partnernet.links.models import Click, Link
    from partnernet.offers.schemas import OfferIn
    from partnernet.offers.services import create_offer

    app = create_app({"DATABASE_URL": url, "REDIS_URL": None, "SECRET_KEY": "x" * 40,
                      "TESTING": True})
    with app.app_context():
        db.create_all()
        dbsetup.install(db.engine)
        with db.engine.begin() as conn:
            today = clock.now().date()
            for back in range(click_days):
                partitions.create_day_partition(conn, today - timedelta(days=back))
        shop = create_merchant("Bench shop", f"bench-{uuid.uuid4().hex[:6]}@shop.example")
        offer = create_offer(shop.merchant.id, OfferIn().load({
            "name": "Bench", "landing_url": "https://shop.example/landing",
            "plans": [{"event": "sale", "type": "cps", "percent": "10"}]}))
        now = clock.now()
        ids: list[str] = []
        partner_ids: list[int] = []
        code = ""
        # Many partners, as in a real program: per-partner work (tiers, caps) stays realistic.
        for p in range(partners):
            partner, _ = create_partner(shop.merchant.id, email=f"bench{p}@partner.example",
                                        name=f"Bench {p}")
            link = Link(code=tokens.new_code(10), merchant_id=shop.merchant.id, offer_id=offer.id,
                        partner_id=partner.id, status="active")
            db.session.add(link)
            db.session.flush()
            code = code or link.code
            # Ids as the redirect makes them: they carry the click's day.
            batch = [tokens.click_id_for(now - timedelta(minutes=30 + i)) for i in range(clicks // partners)]
            ids.extend(batch)
            # Every click the redirect records carries the keyed hash of its IP, so the
            # duplicate-IP fraud rule runs on every postback, as it does in production.
            db.session.add_all(Click(id=cid, link_id=link.id, merchant_id=shop.merchant.id,
                                     offer_id=offer.id, partner_id=partner.id,
                                     ip_hash=tokens.new_click_id() * 2,
                                     created_at=now - timedelta(minutes=30 + i))
                               for i, cid in enumerate(batch))
            partner_ids.append(partner.id)
        db.session.commit()
        seed_history(shop.merchant.id, offer.id, partner_ids, history)
        random.Random(7).shuffle(ids)  # consecutive orders go to different partners
        data = {"token": shop.postback_token, "code": code, "click_ids": ids}
        db.engine.dispose()
    return data


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited during start-up")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /healthz in time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--rounds", type=int, default=4,
                        help="alternating rounds the baseline and new-postback phases are cut into")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=4, help="connections per client process")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--worker-threads", type=int, default=4, help="gunicorn threads per worker")
    parser.add_argument("--port", type=int, default=5077)
    parser.add_argument("--baseline", choices=("redirect", "healthz"), default="redirect")
    args = parser.parse_args()

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from partnernet.config import normalize_database_url

    base_url = os.environ.get("DATABASE_URL", "")
    if not base_url.startswith(("postgres://", "postgresql")):
        raise SystemExit("set DATABASE_URL to a PostgreSQL server (the benchmark makes its own database)")
    base = make_url(normalize_database_url(base_url))
    name = f"pn_bench_postback_{os.getpid()}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    prefix = f"pnbench{os.getpid()}"
    server = None
    try:
        data = seed(url, clicks=2000)
        env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "b" * 48,
               "PARTNERNET_REDIS_PREFIX": f"{prefix}:", "PARTNERNET_QUEUE_PREFIX": prefix,
               "PARTNERNET_POSTBACK_RATE_LIMIT": "100000000 per minute"}
        cmd = [str(ROOT / ".venv/bin/gunicorn"), "-w", str(args.workers), "-k", "gthread",
               "--threads", str(args.worker_threads), "-b", f"127.0.0.1:{args.port}",
               "--log-level", "warning", "wsgi:app"]
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
        wait_ready(args.port, server)
        master = server.pid

        def gunicorn_workers() -> list[int]:
            found = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
            return [int(pid) for pid in found.stdout.split()]

        def backends() -> list[int]:
            # Backends come and go with the pool; those alive at both ends are counted.
            with admin.connect() as conn:
                return [row[0] for row in conn.execute(text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :n"), {"n": name})]

        watch = {"gunicorn": gunicorn_workers, "postgres": backends}

        baseline_path = f"/r/{data['code']}"
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=10)
        conn.request("GET", baseline_path, headers={"User-Agent": "bench"})
        redirect_works = conn.getresponse().status == 302
        conn.close()
        if args.baseline == "healthz" or not redirect_works:
            baseline_name = "baseline /healthz"
            baseline_path = "/healthz"
            print("NOTE: the baseline is the bare /healthz Flask route, not the redirect.")
        else:
            baseline_name = "redirect /r/<code>"
        token = data["token"]
        clicks = data["click_ids"]
        run = uuid.uuid4().hex[:6]

        def postbacks(client: int, round_: int, count: int) -> list[str]:
            return ["/postback?" + urlencode({
                "token": token, "click_id": clicks[(client * count + i) % len(clicks)],
                "order_id": f"{run}-{round_}-{client}-{i}", "amount": "49.90"}) for i in range(count)]

        rounds = max(1, args.rounds)
        print(f"gunicorn: {args.workers} workers x {args.worker_threads} threads (gthread); "
              f"clients: {args.clients} processes x {args.threads} keep-alive connections; "
              f"{args.seconds:.0f} s per phase, the first two in {rounds} alternating rounds; "
              f"Redis: {'yes' if os.environ.get('REDIS_URL') else 'no'}")
        phase("warm-up", args.port, [[baseline_path]] * args.clients, 1.5, args.threads)
        # The baseline and the new postbacks alternate in short rounds: the host's speed
        # drifts over seconds (other work on a shared machine), and a drift then weighs on
        # both sides of the ratio alike instead of on whichever phase it fell in.
        base_tally, new_tally = Tally(), Tally()
        for round_ in range(rounds):
            tag = f" {round_ + 1}/{rounds}" if rounds > 1 else ""
            phase(baseline_name + tag, args.port, [[baseline_path]] * args.clients,
                  args.seconds / rounds, args.threads, watch, tally=base_tally)
            # Enough distinct orders that no client wraps around within the round.
            new_sets = [postbacks(c, round_, 50_000) for c in range(args.clients)]
            _, new_status = phase("new postbacks" + tag, args.port, new_sets, args.seconds / rounds,
                                  args.threads, watch, tally=new_tally)
        if rounds > 1:
            print(base_tally.line(baseline_name + " (all)"))
            print(new_tally.line("new postbacks (all)"))
        base_rate, new_rate = base_tally.rate(), new_tally.rate()
        base_cpu, new_cpu = base_tally.cpu_ms(), new_tally.cpu_ms()
        # The first half of each client's share of the last round surely got recorded: repeat those.
        done = max(1, new_status.get(200, 0) // args.clients // 2)
        dup_sets = [paths[:min(done, 2000)] for paths in new_sets]
        dup_rate, dup_status = phase("duplicate postbacks", args.port, dup_sets, args.seconds,
                                     args.threads, watch)
        # Context: the cost of any Flask request (the redirect answers cached codes before
        # Flask's request machinery, so it is cheaper than the cheapest Flask route).
        flask_rate = base_rate
        if baseline_path != "/healthz":
            flask_rate, _ = phase("bare Flask /healthz", args.port, [["/healthz"]] * args.clients,
                                  args.seconds, args.threads, watch)
        print()
        print(f"new postbacks / {baseline_name}: {new_rate / base_rate:5.2f}  (target >= 0.25)")
        print(f"duplicate / new postbacks:       {dup_rate / new_rate:5.2f}  (target >= 1.00)")
        print(f"new postbacks / bare Flask route: {new_rate / flask_rate:5.2f}  (context)")
        if base_cpu.get("total") and new_cpu.get("total"):
            # CPU per request does not depend on what other processes took during each phase.
            print(f"{baseline_name} CPU / new postback CPU (gunicorn + postgres): "
                  f"{base_cpu['total']:.2f} / {new_cpu['total']:.2f} ms = "
                  f"{base_cpu['total'] / new_cpu['total']:5.2f}  (the same ratio in CPU)")
        bad = {s: n for s, n in {**new_tally.statuses, **dup_status}.items() if s != 200}
        if bad:
            print(f"non-200 answers during postback phases: {bad}")
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            import redis

            r = redis.Redis.from_url(redis_url)
            for pattern in (f"{prefix}:*", f"rq:*{prefix}*"):
                keys = list(r.scan_iter(pattern, count=1000))
                if keys:
                    r.delete(*keys)


if __name__ == "__main__":
    main()

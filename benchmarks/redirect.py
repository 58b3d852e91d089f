"""Benchmark of the click redirect and the click flush, against a baseline in the same run.

Usage: .venv/bin/python benchmarks/redirect.py [--duration 10] [--pg postgresql://...] [--only-flush]

Needs PostgreSQL (a database of its own is created and dropped), ``redis-server``
(a private one on a free port, so stopping it mid-run harms no one) and ``wrk``
(Debian: ``apt-get install -y wrk``). Everything listens on loopback; the run is
bounded (about 2 minutes with the default duration).

Measures, printing ratios:
1. ``/r/<code>`` under gunicorn (2 sync workers) with Redis vs a bare Flask 302 route
   served the same way (requests/s, p99), plus the naive insert-per-click path;
   and ``/i/<code>.gif`` (the impression pixel) vs a bare Flask route answering the same GIF;
2. SQL statements per cached redirect and per cached pixel (counted in-process);
3. flush rows/s vs a raw psycopg COPY of the same rows into the same table and vs a
   per-row INSERT loop;
4. Redis stopped mid-run: every click that got a 302 is in the database afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, Response

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Imported when gunicorn loads the module, not on the first measured request.
from partnernet.creatives.views import GIF, PIXEL_HEADERS  # noqa: E402

UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SECRET = "bench-" + "k" * 40

#: The baseline: a bare Flask app whose only route answers a 302.
bare_app = Flask("bare")


@bare_app.get("/r/<code>")
def bare_redirect(code: str) -> Response:
    return Response(status=302, headers={"Location": "https://shop.example/landing?src=aff"})


@bare_app.get("/i/<code>.gif")
def bare_pixel(code: str) -> Response:
    """The pixel's baseline: the same GIF and headers, nothing recorded."""
    return Response(GIF, status=200, headers=PIXEL_HEADERS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process on :{port} exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on :{port}")


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    """Until a worker answers (the master listens long before its workers have imported the app)."""
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn on :{port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"no gunicorn worker answered on :{port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RedisServer:
    """A private redis-server with AOF (appendfsync everysec, as production should run)."""

    def __init__(self, directory: Path) -> None:
        self.port, self.dir = free_port(), directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)
        import redis

        deadline = time.monotonic() + 30
        while True:  # answering, and done loading its AOF
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis.exceptions.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)  # SIGTERM: Redis writes its AOF out and exits


def _children_states(pid: int) -> list[str]:
    """The scheduler states (R, S, D, ...) of a process's children, from /proc."""
    states = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            states.append(fields[0])
    return states


def wait_workers_booted(proc: subprocess.Popen[bytes], workers: int, timeout: float = 90) -> None:
    """Until every worker has imported the app and sits idle (sleeping) for half a second.

    Without it the first measured run met a worker still importing the app on this loaded
    machine: one worker served alone for seconds (half the throughput, p99 near 1 s).
    """
    deadline = time.monotonic() + timeout
    calm = 0
    while time.monotonic() < deadline and calm < 5:
        states = _children_states(proc.pid)
        calm = calm + 1 if len(states) == workers and all(s == "S" for s in states) else 0
        time.sleep(0.1)


@contextmanager
def gunicorn(app_path: str, env: dict[str, str], hosts: list[str], workers: int = 2,
             warm_paths: tuple[str, ...] = ("/healthz",)) -> Iterator[int]:
    """gunicorn on one port of several loopback addresses.

    Sync workers close each connection, so a run opens thousands; a fresh server address
    per wrk run keeps new connections from meeting the last run's TIME_WAIT sockets
    (which would cost 1 s SYN retries and show up as p99 outliers).
    """
    port = free_port()
    binds = [arg for host in hosts for arg in ("-b", f"{host}:{port}")]
    cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "sync", "--backlog", "2048",
           *binds, "--timeout", "60", "--log-level", "warning", app_path]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        wait_port(port, proc)
        wait_healthy(port, proc)
        wait_workers_booted(proc, workers)
        # Warm up on the first address, on the paths to be measured (caches fill); not measured.
        for path in warm_paths:
            subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-H", f"User-Agent: {UA}",
                            f"http://{hosts[0]}:{port}{path}"], capture_output=True, timeout=30, check=False)
        yield port
    finally:
        stop(proc)


def parse_latency(text: str) -> float:
    """wrk's latency figure (``812.00us``, ``3.20ms``, ``1.01s``, ``1.00m``) in milliseconds."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise ValueError(f"unreadable wrk latency {text!r}")
    number, unit = found.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(url: str, duration: int, connections: int = 16) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-H", f"User-Agent: {UA}", url],
        capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    try:
        return _wrk_figures(out)
    except (AttributeError, ValueError):
        print(f"    (could not read wrk's output:)\n{out}")
        raise


def _wrk_figures(out: str) -> dict[str, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The distribution's own lines ("     99%    23.98ms"), not a "+/- Stdev" figure ending in 50%.
    p99 = parse_latency(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p50 = parse_latency(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    total = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {"requests": total, "rps": rps, "p50_ms": p50, "p99_ms": p99,
            "non_3xx": float(bad.group(1)) if bad else 0.0,
            "socket_errors": errors.group(1) if errors else "none"}  # type: ignore[dict-item]


# -- setup ----------------------------------------------------------------------------------

def create_database(admin_url: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from partnernet.config import normalize_database_url

    base = make_url(normalize_database_url(admin_url))
    name = f"pn_bench_{os.getpid()}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from partnernet.config import normalize_database_url

    name = make_url(url).database
    admin = create_engine(make_url(normalize_database_url(admin_url)).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def make_app(db_url: str, redis_url: str | None, prefix: str, **extra: Any) -> Any:
    from partnernet.app import create_app

    return create_app({"DATABASE_URL": db_url, "REDIS_URL": redis_url, "SECRET_KEY": SECRET,
                       "REDIS_KEY_PREFIX": prefix, "RATELIMIT_ENABLED": False, **extra})


def seed(app: Any) -> str:
    from partnernet import dbsetup
    from partnernet.extensions import db
    from partnernet.links.services import create_link
    from tests.factories import make_merchant, make_offer, make_partner

    with app.app_context():
        db.create_all()
        dbsetup.install(db.engine)
        shop = make_merchant()
        partner = make_partner(shop.merchant.id)
        offer = make_offer(shop.merchant.id)
        link = create_link(shop.merchant.id, {"offer_id": offer.id, "partner_id": partner.id,
                                              "utm_source": "bench"})
        return str(link.code)


def click_count(app: Any) -> int:
    from sqlalchemy import func, select

    from partnernet.extensions import db
    from partnernet.links.models import Click

    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Click)) or 0
        db.session.remove()
        return int(count)


def truncate_clicks(app: Any) -> None:
    from sqlalchemy import text

    from partnernet.extensions import db

    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("TRUNCATE clicks"))


# -- the measurements -------------------------------------------------------------------------

def sql_per_cached_request(app: Any, path: str, status: int, n: int = 200) -> float:
    from sqlalchemy import event

    from partnernet.extensions import db

    statements: list[str] = []
    with app.app_context():
        client = app.test_client()
        client.get(path, headers={"User-Agent": UA})  # warm the caches
        engine = db.engine

        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            for i in range(n):
                r = client.get(f"{path}?sub1={i}", headers={"User-Agent": UA},
                               environ_base={"REMOTE_ADDR": f"10.1.{i // 250}.{i % 250}"})
                assert r.status_code == status
        finally:
            event.remove(engine, "before_cursor_execute", count)
    return len(statements) / n


def synthetic_rows(app: Any, n: int) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from partnernet import clock, tokens
    from partnernet.extensions import db
    from partnernet.links.models import Link

    with app.app_context():
        link = db.session.scalars(select(Link)).first()
        assert link is not None
        now = clock.now()
        rows = [{
            "id": tokens.new_click_id(), "created_at": now, "link_id": link.id,
            "merchant_id": link.merchant_id, "offer_id": link.offer_id, "partner_id": link.partner_id,
            "ip_truncated": "203.0.113.0", "ip_hash": secrets.token_hex(32), "user_agent": UA,
            "referer": "https://blog.example/post", "sub1": f"s{i % 50}", "sub2": None, "sub3": None,
            "sub4": None, "sub5": None, "visitor_id": secrets.token_urlsafe(16), "is_unique": i % 3 == 0,
            "is_bot": False, "paid_ads_param": None, "country": None, "variant_id": None, "creative_id": None,
        } for i in range(n)]
        db.session.remove()
        return rows


def raw_copy(app: Any, rows: list[dict[str, Any]]) -> float:
    from partnernet.extensions import db
    from partnernet.links.buffer import COLUMNS

    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            start = time.perf_counter()
            with raw.driver_connection.cursor() as cur:  # type: ignore[union-attr]
                with cur.copy(f"COPY clicks ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([row[c] for c in COLUMNS])
            raw.commit()
            return len(rows) / (time.perf_counter() - start)
        finally:
            raw.close()


def per_row_inserts(app: Any, rows: list[dict[str, Any]], commit_each: bool) -> float:
    from partnernet.extensions import db
    from partnernet.links.buffer import COLUMNS

    cols = ", ".join(COLUMNS)
    marks = ", ".join(["%s"] * len(COLUMNS))
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            start = time.perf_counter()
            with raw.driver_connection.cursor() as cur:  # type: ignore[union-attr]
                for row in rows:
                    cur.execute(f"INSERT INTO clicks ({cols}) VALUES ({marks})", [row[c] for c in COLUMNS])
                    if commit_each:
                        raw.commit()
            raw.commit()
            return len(rows) / (time.perf_counter() - start)
        finally:
            raw.close()


def flush_rate(app: Any, rows: list[dict[str, Any]]) -> float:
    from partnernet.links import buffer

    with app.app_context():
        client = buffer.click_redis()
        pipe = client.pipeline(transaction=False)
        for row in rows:
            pipe.xadd(buffer.stream_key(), {"c": buffer.encode(row), "u": "1" if row["is_unique"] else "0"})
        pipe.execute()
        # The prefill stands for the redirects' work, not the flush's: let Redis's AOF
        # (appendfsync everysec) finish writing it out first, or its fsync of ~25 MB competes
        # with the COPY for the disk, which the raw COPY above never had to share.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            info = client.info("persistence")
            if not info.get("aof_pending_bio_fsync") and not info.get("aof_rewrite_in_progress"):
                break
            time.sleep(0.1)
        time.sleep(1.2)  # past the next everysec fsync
        start = time.perf_counter()
        result = buffer.flush_clicks(max_batches=10_000)
        elapsed = time.perf_counter() - start
        assert result["flushed"] == len(rows), result
        return len(rows) / elapsed


def copy_anatomy(app: Any, rows: list[dict[str, Any]], reps: int = 3) -> None:
    """Where a COPY row's time goes: the same rows COPYed (as the flush sends them: packed text
    lines, one buffer) into a scratch copy of the clicks table with no index, then with each
    of the model's indexes alone, then all of them; best of ``reps``, microseconds per row.
    Also the same with binary COPY (the buffer made by the server, so client-side encoding is
    not counted) and with the btrees the two hash indexes replaced, for comparison."""
    from partnernet.extensions import db
    from partnernet.links.buffer import CLICKS

    with app.app_context():
        data = CLICKS.copy_data([(CLICKS.encode(r).encode(), b"1" if r["is_unique"] else b"0") for r in rows])
        clicks = db.metadata.tables["clicks"]
        indexes = {"pk (id, created_at)": "ALTER TABLE {t} ADD PRIMARY KEY (id, created_at)"}
        for index in clicks.indexes:
            using = index.dialect_options["postgresql"].get("using") or "btree"
            indexes[f"{index.name} ({using})"] = (
                f"CREATE INDEX ON {{t}} USING {using} ({', '.join(c.name for c in index.columns)})")
        everything = list(indexes.values())
        for earlier in ("visitor_id, offer_id, created_at", "link_id, ip_hash, created_at"):
            indexes[f"earlier btree ({earlier})"] = f"CREATE INDEX ON {{t}} ({earlier})"
        cols = ", ".join(CLICKS.copy_columns)
        raw = db.engine.raw_connection()
        try:
            cur = raw.driver_connection.cursor()  # type: ignore[union-attr]
            cur.execute("CREATE TEMP TABLE anatomy_src (LIKE clicks)")
            with cur.copy(f"COPY anatomy_src ({cols}) FROM STDIN") as copy:
                copy.write(data)
            binary = bytearray()
            with cur.copy(f"COPY anatomy_src ({cols}) TO STDOUT (FORMAT BINARY)") as copy:
                for chunk in copy:
                    binary += chunk
            raw.commit()

            def best(ddl: list[str], payload: bytes, fmt: str) -> float:
                cur.execute("DROP TABLE IF EXISTS anatomy")
                cur.execute("CREATE TABLE anatomy (LIKE clicks INCLUDING DEFAULTS)")
                for statement in ddl:
                    cur.execute(statement.format(t="anatomy"))
                raw.commit()
                times = []
                for _ in range(reps):
                    cur.execute("TRUNCATE anatomy")
                    raw.commit()
                    start = time.perf_counter()
                    with cur.copy(f"COPY anatomy ({cols}) FROM STDIN {fmt}") as copy:
                        copy.write(payload)
                    raw.commit()
                    times.append((time.perf_counter() - start) / len(rows) * 1e6)
                return min(times)

            print(f"    COPY anatomy, {len(rows)} rows, best of {reps}, us/row (text | binary):")
            for name, ddl in [("no index (heap only)", []), *[(k, [v]) for k, v in indexes.items()],
                              ("all of the model's indexes", everything)]:
                text_us, binary_us = best(ddl, data, ""), best(ddl, bytes(binary), "(FORMAT BINARY)")
                print(f"      {name:52} {text_us:6.1f} | {binary_us:6.1f}")
            cur.execute("DROP TABLE IF EXISTS anatomy")
            raw.commit()
        finally:
            raw.close()


def flusher(app: Any, stop_event: threading.Event, every: float = 5.0) -> threading.Thread:
    """The worker's flush-clicks job, every few seconds, as in production."""
    from partnernet.links import buffer

    def loop() -> None:
        with app.app_context():
            while not stop_event.wait(every):
                try:
                    buffer.flush_clicks()
                except Exception as exc:  # noqa: BLE001 - Redis may be down on purpose
                    print(f"    (flush skipped: {exc.__class__.__name__})")
                    buffer.mark_redis_down()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def outage_run(app: Any, port: int, code: str, redis: RedisServer, seconds: float) -> dict[str, Any]:
    """Clients hammer the redirect while Redis is stopped for the middle third of the run."""
    import http.client

    from partnernet.extensions import db
    from partnernet.links import buffer
    from partnernet.links.models import Click

    got: list[str] = []
    failures: list[str] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < end:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", f"/r/{code}", headers={"User-Agent": UA})
                r = conn.getresponse()
                r.read()
                conn.close()
            except OSError as exc:
                with lock:
                    failures.append(exc.__class__.__name__)
                continue
            if r.status == 302:
                click_id = r.getheader("Location", "").rsplit("click_id=", 1)[1]
                with lock:
                    got.append(click_id)
            else:
                with lock:
                    failures.append(str(r.status))

    threads = [threading.Thread(target=client) for _ in range(4)]
    began = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds / 3)
    print(f"    load average now: {os.getloadavg()[0]:.1f}")
    redis.stop()
    stopped_at, count_at_stop = time.monotonic() - began, len(got)
    print(f"    Redis stopped at {stopped_at:.1f}s ({count_at_stop} redirects answered 302 so far)")
    time.sleep(seconds / 3)
    redis.start()
    started_at, count_at_start = time.monotonic() - began, len(got)
    print(f"    Redis answering again at {started_at:.1f}s ({count_at_start - count_at_stop} redirects "
          "answered 302 while it was down or loading)")
    for t in threads:
        t.join()
    print(f"    run ended at {time.monotonic() - began:.1f}s ({len(got) - count_at_start} more redirects)")
    with app.app_context():
        buffer._state(app).down_until = 0.0
        time.sleep(0.5)
        while buffer.flush_clicks(max_batches=10_000)["flushed"]:
            pass
        from sqlalchemy import select

        stored = set(db.session.scalars(select(Click.id)))
        db.session.remove()
    missing = [c for c in got if c not in stored]
    return {"redirects_302": len(got), "other_answers": len(failures), "in_database": len(stored),
            "missing": len(missing)}


def settle(app: Any) -> int:
    """Between measured runs, untimed: the flush job's work (production runs it every few
    seconds, so Redis holds seconds of clicks, not every click of the runs so far), then
    until no AOF rewrite is in progress. Returns Redis's count of AOF rewrites so far.

    Without it the buffer grew by some 20,000 clicks a run (60-90 MB by the third round) and
    Redis's automatic AOF rewrite — a forked child writing out that whole dataset — landed
    inside some redirect and pixel runs and took a core from them (3,163 vs 4,416 req/s
    between rounds of one quiet run), a cost of the benchmark's backlog, not of a click.
    """
    from partnernet.creatives import pixel
    from partnernet.links import buffer

    with app.app_context():
        while buffer.flush_clicks(max_batches=10_000)["flushed"]:
            pass
        while pixel.flush_impressions(max_batches=10_000)["flushed"]:
            pass
        client = buffer.click_redis()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            info = client.info("persistence")
            if not info.get("aof_rewrite_in_progress"):
                return int(info.get("aof_rewrites", 0))
            time.sleep(0.1)
        return int(client.info("persistence").get("aof_rewrites", 0))


def run_settled(app: Any, url: str, duration: int) -> dict[str, Any]:
    """``run_wrk`` after ``settle``, noting whether an AOF rewrite ran during the run anyway."""
    rewrites = settle(app)
    result: dict[str, Any] = run_wrk(url, duration)
    from partnernet.links import buffer

    with app.app_context():
        after = int(buffer.click_redis().info("persistence").get("aof_rewrites", 0))
    result["aof_rewrite"] = after != rewrites
    return result


def redirect_sections(app: Any, code: str, env: dict[str, str], naive_env: dict[str, str],
                      args: argparse.Namespace, results: dict[str, Any]) -> None:
    """Sections 1 and 2: the redirect and the pixel under gunicorn, and their SQL per request."""
    rounds = args.rounds
    print(f"== 1. throughput: {rounds} alternating rounds of wrk -t2 -c16 -d{args.duration}s, "
          "gunicorn -w 2 (sync); flush job not running during these")

    def addresses(server: int) -> list[str]:
        return [f"127.0.{server}.{i}" for i in range(1, rounds + 3)]

    bare_runs: list[dict[str, float]] = []
    red_runs: list[dict[str, float]] = []
    bare_px_runs: list[dict[str, float]] = []
    px_runs: list[dict[str, float]] = []
    bare_hosts, red_hosts = addresses(11), addresses(12)
    bare_px_hosts, px_hosts = addresses(14), addresses(15)
    wait_port_hosts = ["127.0.0.1"]
    warm = (f"/r/{code}", f"/i/{code}.gif")  # the same for both servers
    with gunicorn("benchmarks.redirect:bare_app", env,
                  wait_port_hosts + bare_hosts + bare_px_hosts, warm_paths=warm) as bare_port, \
            gunicorn("wsgi:app", env, wait_port_hosts + red_hosts + px_hosts,
                     warm_paths=warm) as red_port:
        with app.app_context():  # the warm-up's clicks are not the measured runs'
            from partnernet.links import buffer

            while buffer.flush_clicks(max_batches=10_000)["flushed"]:
                pass
        before = click_count(app)
        for i in range(rounds):
            bare_runs.append(run_wrk(f"http://{bare_hosts[i + 1]}:{bare_port}/r/{code}", args.duration))
            red_runs.append(run_settled(app, f"http://{red_hosts[i + 1]}:{red_port}/r/{code}", args.duration))
            bare_px_runs.append(run_wrk(f"http://{bare_px_hosts[i + 1]}:{bare_port}/i/{code}.gif",
                                        args.duration))
            px_runs.append(run_settled(app, f"http://{px_hosts[i + 1]}:{red_port}/i/{code}.gif",
                                       args.duration))
            print(f"    round {i + 1}: bare {bare_runs[-1]['rps']:7.0f} req/s p99 "
                  f"{bare_runs[-1]['p99_ms']:6.1f} ms | redirect {red_runs[-1]['rps']:7.0f} req/s "
                  f"p99 {red_runs[-1]['p99_ms']:6.1f} ms | bare GIF {bare_px_runs[-1]['rps']:7.0f} req/s "
                  f"p99 {bare_px_runs[-1]['p99_ms']:6.1f} ms | pixel {px_runs[-1]['rps']:7.0f} req/s "
                  f"p99 {px_runs[-1]['p99_ms']:6.1f} ms"
                  + "".join(f" ({name}: an AOF rewrite ran during it)" for name, run in
                            (("redirect", red_runs[-1]), ("pixel", px_runs[-1])) if run["aof_rewrite"]))
        served = sum(r["requests"] for r in red_runs)
        with app.app_context():
            from partnernet.links import buffer

            while buffer.flush_clicks(max_batches=10_000)["flushed"]:
                pass
        results["redirect_clicks_stored"] = click_count(app) - before
        results["redirect_requests"] = served
        # Once more with the flush job running beside it every 5 s (same 2 cores).
        stop_flusher = threading.Event()
        flusher(app, stop_flusher)
        results["with_flusher"] = run_wrk(f"http://{red_hosts[-1]}:{red_port}/r/{code}", args.duration)
        stop_flusher.set()
        print(f"    redirect with the flush job running alongside: {results['with_flusher']}")
    results["bare"] = {k: statistics.median(r[k] for r in bare_runs) for k in ("rps", "p99_ms")}
    results["redirect"] = {k: statistics.median(r[k] for r in red_runs) for k in ("rps", "p99_ms")}
    results["bare_gif"] = {k: statistics.median(r[k] for r in bare_px_runs) for k in ("rps", "p99_ms")}
    results["pixel"] = {k: statistics.median(r[k] for r in px_runs) for k in ("rps", "p99_ms")}
    results["pixel_non_2xx"] = sum(r["non_3xx"] for r in px_runs)
    print(f"    median bare Flask 302:     {results['bare']}")
    print(f"    median /r/<code> (Redis):  {results['redirect']}")
    print(f"    median bare Flask GIF:     {results['bare_gif']}")
    print(f"    median /i/<code>.gif:      {results['pixel']}")
    with gunicorn("wsgi:app", naive_env, ["127.0.0.1", "127.0.13.1"], warm_paths=(f"/r/{code}",)) as port:
        results["naive"] = run_wrk(f"http://127.0.13.1:{port}/r/{code}", args.duration)
    print(f"    /r/<code> without Redis (insert per click): {results['naive']}")

    print("== 2. SQL statements per cached redirect (in-process, 200 redirects)")
    results["sql_per_redirect"] = sql_per_cached_request(app, f"/r/{code}", 302)
    results["sql_per_pixel"] = sql_per_cached_request(app, f"/i/{code}.gif", 200)
    print(f"    redirect {results['sql_per_redirect']:.3f}, pixel {results['sql_per_pixel']:.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument("--pg", default=os.environ.get("DATABASE_URL")
                        or "postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, default=50_000, help="rows for the flush comparison")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/redirect wrk rounds")
    parser.add_argument("--copy-anatomy", action="store_true",
                        help="also: COPY cost per row of each clicks index alone (scratch tables)")
    parser.add_argument("--flush-rounds", type=int, default=1,
                        help="interleaved rounds of section 3 (raw COPY, flush, INSERT loop); medians")
    parser.add_argument("--only-flush", action="store_true",
                        help="section 3 only (the flush and its baselines): skips 1, 2 and 4")
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (Debian: apt-get install -y {tool})")
            return 2

    tmp = Path(tempfile.mkdtemp(prefix="pn-bench-"))
    redis = RedisServer(tmp)
    redis.start()
    db_url = create_database(args.pg)
    prefix = f"pnbench:{secrets.token_hex(4)}:"
    results: dict[str, Any] = {}
    try:
        app = make_app(db_url, redis.url, prefix)
        code = seed(app)
        base_env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("PARTNERNET_", "REDIS_URL", "DATABASE_URL"))}
        env = {**base_env, "DATABASE_URL": db_url, "REDIS_URL": redis.url, "SECRET_KEY": SECRET,
               "PARTNERNET_REDIS_PREFIX": prefix, "PARTNERNET_RATELIMIT": "0",
               "PYTHONPATH": str(ROOT)}
        naive_env = {k: v for k, v in env.items() if k != "REDIS_URL"}

        if not args.only_flush:
            redirect_sections(app, code, env, naive_env, args, results)

        print(f"== 3. flush: {args.rows} rows into clicks (PostgreSQL, partitioned)")
        with app.app_context():
            from partnernet.links import buffer

            while buffer.flush_clicks(max_batches=10_000)["flushed"]:
                pass
        rows = synthetic_rows(app, args.rows)
        few = rows[: max(2000, args.rows // 10)]
        samples: dict[str, list[float]] = {"copy_rps": [], "flush_rps": [], "row_insert_rps": []}
        for i in range(args.flush_rounds):  # interleaved: each round meets the same machine load
            truncate_clicks(app)
            samples["copy_rps"].append(raw_copy(app, rows))
            truncate_clicks(app)
            samples["flush_rps"].append(flush_rate(app, rows))
            truncate_clicks(app)
            samples["row_insert_rps"].append(per_row_inserts(app, few, commit_each=False))
            if args.flush_rounds > 1:
                copy_us, flush_us, loop_us = (1e6 / samples[k][-1] for k in samples)
                print(f"    round {i + 1}: raw COPY {copy_us:.1f} us, flush {flush_us:.1f} us, INSERT loop "
                      f"{loop_us:.1f} us a row; flush / COPY {copy_us / flush_us:.2f}, "
                      f"flush / INSERT loop {loop_us / flush_us:.2f}")
        for key, values in samples.items():
            results[key] = statistics.median(values)
        truncate_clicks(app)
        results["row_insert_commit_rps"] = per_row_inserts(app, few[:2000], commit_each=True)
        truncate_clicks(app)
        if args.flush_rounds > 1:
            print(f"    medians of {args.flush_rounds} rounds:")
        print(f"    raw COPY {results['copy_rps']:,.0f} rows/s; flush {results['flush_rps']:,.0f} rows/s; "
              f"per-row INSERT loop {results['row_insert_rps']:,.0f} rows/s "
              f"(one commit per row: {results['row_insert_commit_rps']:,.0f} rows/s)")
        print(f"    per row: raw COPY {1e6 / results['copy_rps']:.1f} us, "
              f"flush {1e6 / results['flush_rps']:.1f} us, "
              f"INSERT loop {1e6 / results['row_insert_rps']:.1f} us")
        if args.copy_anatomy:
            copy_anatomy(app, rows)

        if not args.only_flush:  # section 4
            print(f"== 4. Redis stopped mid-run ({3 * args.duration // 2}s, 4 clients)")
            with gunicorn("wsgi:app", env, ["127.0.0.1"]) as port:
                results["outage"] = outage_run(app, port, code, redis, 3 * args.duration // 2)
            print(f"    {results['outage']}")
    finally:
        redis.stop()
        drop_database(args.pg, db_url)
        shutil.rmtree(tmp, ignore_errors=True)

    flush_checks = [
        ("flush / raw COPY", results["flush_rps"] / results["copy_rps"], ">= 0.50",
         results["flush_rps"] / results["copy_rps"] >= 0.5),
        ("flush / per-row INSERT loop (1 txn)", results["flush_rps"] / results["row_insert_rps"], ">= 10",
         results["flush_rps"] / results["row_insert_rps"] >= 10),
    ]
    if args.only_flush:
        print("\n== ratios (flush only)")
        for name, value, target, ok in flush_checks:
            print(f"  {name:40} {value:8.2f}  target {target:12} {'ok' if ok else 'MISSED'}")
        print(f"  (flush / one-commit-per-row loop "
              f"{results['flush_rps'] / results['row_insert_commit_rps']:.1f} x)")
        return 0 if all(ok for *_, ok in flush_checks) else 1
    bare, red, naive = results["bare"], results["redirect"], results["naive"]
    outage = results["outage"]
    checks = [
        ("redirect throughput / bare", red["rps"] / bare["rps"], ">= 0.80", red["rps"] / bare["rps"] >= 0.8),
        ("redirect p99 / bare p99", red["p99_ms"] / bare["p99_ms"], "<= 2.00",
         red["p99_ms"] / bare["p99_ms"] <= 2.0),
        ("naive insert-per-click / bare", naive["rps"] / bare["rps"], "(reference)", True),
        ("SQL statements per cached redirect", results["sql_per_redirect"], "== 0",
         results["sql_per_redirect"] == 0),
        ("pixel throughput / bare GIF", results["pixel"]["rps"] / results["bare_gif"]["rps"], ">= 0.80",
         results["pixel"]["rps"] / results["bare_gif"]["rps"] >= 0.8 and results["pixel_non_2xx"] == 0),
        ("pixel p99 / bare GIF p99", results["pixel"]["p99_ms"] / results["bare_gif"]["p99_ms"], "(info)",
         True),
        ("SQL statements per cached pixel", results["sql_per_pixel"], "== 0", results["sql_per_pixel"] == 0),
        *flush_checks,
        ("clicks missing after Redis outage", outage["missing"], "== 0",
         outage["missing"] == 0 and outage["other_answers"] == 0),
    ]
    print("\n== ratios")
    for name, value, target, ok in checks:
        print(f"  {name:40} {value:8.2f}  target {target:12} {'ok' if ok else 'MISSED'}")
    print(f"  (redirect runs answered {results['redirect_requests']:.0f} requests and stored "
          f"{results['redirect_clicks_stored']} clicks)\n  (with the flush job alongside: "
          f"{results['with_flusher']['rps'] / bare['rps']:.2f} x bare throughput, p99 "
          f"{results['with_flusher']['p99_ms'] / bare['p99_ms']:.2f} x; "
          f"flush / one-commit-per-row loop "
          f"{results['flush_rps'] / results['row_insert_commit_rps']:.1f} x)")
    print(f"  (outage run: {outage['redirects_302']} redirects answered 302, "
          f"{outage['other_answers']} other answers)")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())

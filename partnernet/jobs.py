"""Background jobs: RQ queues when REDIS_URL is set, inline execution otherwise.

``enqueue(func, *args)`` is the same call either way. Jobs take ids, not objects,
and are safe to run twice. Periodic jobs register themselves with ``periodic``;
``partnernet jobs run NAME`` runs one now and ``partnernet worker`` schedules them.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    func_path: str  # "package.module:function", imported lazily
    interval_seconds: int
    description: str

    def load(self) -> Callable[[], Any]:
        module, _, attr = self.func_path.partition(":")
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


#: The registry of periodic jobs, by name. Features add theirs in ``register_periodic_jobs``.
PERIODIC: dict[str, PeriodicJob] = {}


def periodic(name: str, func_path: str, interval_seconds: int, description: str) -> None:
    """Register a periodic job (idempotent; safe to call at every app creation)."""
    PERIODIC[name] = PeriodicJob(name, func_path, interval_seconds, description)


def register_periodic_jobs() -> None:
    """Import each feature's ``tasks`` module so its periodic jobs register themselves."""
    for feature in ("links", "conversions", "commissions", "payouts", "reports", "creatives"):
        try:
            importlib.import_module(f"partnernet.{feature}.tasks")
        except ModuleNotFoundError as exc:
            if exc.name != f"partnernet.{feature}.tasks":
                raise


_app: Flask | None = None


def _job_app() -> Flask:
    """The app a job runs in: the current one if any, else one built for this process."""
    global _app
    try:
        return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
    except RuntimeError:
        if _app is None:
            from partnernet.app import create_app

            _app = create_app()
        return _app


def run_in_app(func_path: str, *args: Any, **kwargs: Any) -> Any:
    """RQ entry point: import ``func_path`` and call it inside an app context."""
    module, _, attr = func_path.partition(":")
    func = getattr(importlib.import_module(module), attr)
    app = _job_app()
    with app.app_context():
        from partnernet.extensions import db

        try:
            return func(*args, **kwargs)
        finally:
            db.session.remove()


def redis_connection(app: Flask | None = None) -> Any:
    """A Redis client for the configured REDIS_URL, or None on the embedded default."""
    app = app or current_app
    url = app.config.get("REDIS_URL")
    if not url:
        return None
    ext = app.extensions.setdefault("partnernet", {})
    conn = ext.get("redis")
    if conn is None:
        import redis

        conn = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
        ext["redis"] = conn
    return conn


def queue(name: str = "default") -> Any:
    """The RQ queue ``name`` (prefixed per deployment), or None when jobs run inline."""
    if current_app.config.get("JOBS_INLINE"):
        return None
    from rq import Queue

    prefix = current_app.config["RQ_QUEUE_PREFIX"]
    return Queue(f"{prefix}-{name}", connection=redis_connection())


def enqueue(func_path: str, *args: Any, queue_name: str = "default", job_id: str | None = None,
            **kwargs: Any) -> Any:
    """Run ``func_path(*args)`` as a job: on RQ when configured, inline otherwise.

    Inline, the job runs after the caller's transaction, in the same process; a
    failure is logged, not raised, just as a failed RQ job does not fail its caller.
    """
    q = queue(queue_name)
    if q is None:
        try:
            return run_in_app(func_path, *args, **kwargs)
        except Exception:
            log.exception("inline job %s failed", func_path)
            return None
    return q.enqueue(run_in_app, func_path, *args, job_id=job_id, **kwargs)


def run_periodic(name: str) -> Any:
    """Run one periodic job now, in this process."""
    register_periodic_jobs()
    job = PERIODIC[name]
    return job.load()()


def scheduler_loop(app: Flask, stop: threading.Event, tick: float = 1.0) -> None:
    """Enqueue each periodic job when due. Several workers may run this: a Redis
    ``SET NX`` per job and interval slot lets exactly one of them enqueue it."""
    register_periodic_jobs()
    with app.app_context():
        conn = redis_connection(app)
        prefix = app.config["REDIS_KEY_PREFIX"]
        while not stop.is_set():
            now = time.time()
            for job in list(PERIODIC.values()):
                slot = int(now // job.interval_seconds)
                key = f"{prefix}sched:{job.name}:{slot}"
                try:
                    if conn.set(key, "1", nx=True, ex=job.interval_seconds * 2 + 5):
                        enqueue(job.func_path, queue_name="periodic")
                except Exception:
                    log.exception("scheduler could not enqueue %s", job.name)
            stop.wait(tick)

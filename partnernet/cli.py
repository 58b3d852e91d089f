"""The ``partnernet`` command: a Flask CLI group over the app factory."""

from __future__ import annotations

import json
import threading
from typing import Any

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext

from partnernet import jobs


def _create_app() -> Any:
    from partnernet.app import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False,
             add_version_option=False)
def main() -> None:
    """partnernet: affiliate and influencer partner network backend."""


@click.group("merchants")
def merchants_group() -> None:
    """Manage merchants."""


@merchants_group.command("create")
@click.option("--name", required=True, help="The program's name.")
@click.option("--email", required=True, help="The owner's login email.")
@click.option("--password", default=None, help="The owner's password (omit: no panel login yet).")
@click.option("--currency", default="USD", show_default=True)
@with_appcontext
def merchants_create(name: str, email: str, password: str | None, currency: str) -> None:
    """Create a merchant and its owner; print its id and secrets (shown once) as JSON."""
    from partnernet.accounts.services import create_merchant
    from partnernet.errors import PartnernetError
    from partnernet.money import MoneyError

    try:
        created = create_merchant(name, email, password, currency)
    except (PartnernetError, MoneyError) as exc:
        raise click.ClickException(exc.message) from None
    click.echo(json.dumps({
        "merchant_id": created.merchant.id,
        "name": created.merchant.name,
        "currency": created.merchant.currency,
        "owner_email": created.owner.email,
        "api_key": created.api_key,
        "postback_token": created.postback_token,
        "postback_secret": created.postback_secret,
        "postback_url": f"{current_app.config['BASE_URL']}/postback",
    }))


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def serve(host: str, port: int) -> None:
    """Serve the web app (development server; use gunicorn wsgi:app in production)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    click.echo(f"partnernet on http://{host}:{port}  (database: {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]})")
    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, use_reloader=False)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Drain the queues and exit.")
@with_appcontext
def worker(burst: bool) -> None:
    """An RQ worker with the periodic-job scheduler (needs REDIS_URL)."""
    from rq import SimpleWorker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    conn = jobs.redis_connection(app)
    if conn is None:
        raise click.ClickException("REDIS_URL is not set: jobs run inline, no worker is needed.")
    queues = [jobs.queue(name) for name in ("default", "payouts", "periodic")]
    stop = threading.Event()
    scheduler = None
    if not burst:
        scheduler = threading.Thread(target=jobs.scheduler_loop, args=(app, stop), daemon=True)
        scheduler.start()
    try:
        SimpleWorker(queues, connection=conn).work(burst=burst)
    finally:
        stop.set()


@click.group("jobs")
def jobs_group() -> None:
    """Periodic jobs."""


@jobs_group.command("run")
@click.argument("name")
@with_appcontext
def jobs_run(name: str) -> None:
    """Run one periodic job now, inline."""
    jobs.register_periodic_jobs()
    if name not in jobs.PERIODIC:
        known = ", ".join(sorted(jobs.PERIODIC)) or "none yet"
        raise click.ClickException(f"unknown job {name!r}; known: {known}")
    result = jobs.run_periodic(name)
    click.echo(json.dumps({"job": name, "result": result}, default=str))


@jobs_group.command("list")
@with_appcontext
def jobs_list() -> None:
    """List the periodic jobs and their intervals."""
    jobs.register_periodic_jobs()
    for job in sorted(jobs.PERIODIC.values(), key=lambda j: j.name):
        click.echo(f"{job.name:20} every {job.interval_seconds:>6}s  {job.description}")


def register_commands(app: Any) -> None:
    """Attach the command groups to the app's CLI (Flask-Migrate adds ``db``).

    A feature adds its own commands in ``partnernet/<feature>/cli.py`` as a list
    named ``commands`` (click commands or groups).
    """
    import importlib

    from partnernet.app import FEATURES

    app.cli.add_command(merchants_group)
    app.cli.add_command(serve)
    app.cli.add_command(worker)
    app.cli.add_command(jobs_group)
    for feature in FEATURES:
        name = f"partnernet.{feature}.cli"
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        for command in getattr(module, "commands", []):
            app.cli.add_command(command)


if __name__ == "__main__":  # python -m partnernet.cli
    main()

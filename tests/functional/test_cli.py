"""The partnernet command: merchants create, db upgrade, jobs."""

import json
import os
import subprocess
import sys

from sqlalchemy import select

from partnernet.accounts.models import ApiKey, Merchant
from partnernet.cli import main
from partnernet.tokens import hash_secret


def test_merchants_create_prints_json_with_secrets(app):
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["merchants", "create", "--name", "Acme", "--email",
                                  "Owner@Acme.example", "--currency", "eur"],
                           obj=_script_info(app))
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {"merchant_id", "api_key", "postback_token", "postback_secret"} <= out.keys()
    from partnernet.extensions import db

    merchant = db.session.get(Merchant, out["merchant_id"])
    assert merchant.currency == "EUR"
    # only the hash of the key is stored, and it authenticates
    key = db.session.scalar(select(ApiKey).where(ApiKey.merchant_id == merchant.id))
    assert key.key_hash == hash_secret(out["api_key"]) and out["api_key"] not in key.key_hash
    assert merchant.postback_token_hash == hash_secret(out["postback_token"])


def test_merchants_create_refuses_bad_currency_and_taken_email(app):
    runner = app.test_cli_runner()
    bad = runner.invoke(main, ["merchants", "create", "--name", "X", "--email", "x@x.example",
                               "--currency", "ZZZ"], obj=_script_info(app))
    assert bad.exit_code != 0 and "unknown currency" in bad.output
    ok = runner.invoke(main, ["merchants", "create", "--name", "X", "--email", "x@x.example"],
                       obj=_script_info(app))
    assert ok.exit_code == 0
    again = runner.invoke(main, ["merchants", "create", "--name", "Y", "--email", "X@x.example"],
                          obj=_script_info(app))
    assert again.exit_code != 0 and "already exists" in again.output


def test_jobs_run_unknown_job_lists_known(app):
    result = app.test_cli_runner().invoke(main, ["jobs", "run", "no-such-job"],
                                          obj=_script_info(app))
    assert result.exit_code != 0 and "unknown job" in result.output


def test_db_upgrade_twice_through_the_installed_command(tmp_path):
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
               SECRET_KEY="cli-test-key")
    env.pop("REDIS_URL", None)
    cmd = [sys.executable, "-m", "partnernet.cli", "db", "upgrade"]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "Running upgrade" in first.stderr
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "Running upgrade" not in second.stderr
    created = subprocess.run(
        [sys.executable, "-m", "partnernet.cli", "merchants", "create", "--name", "Cli",
         "--email", "cli@shop.example"], env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["merchant_id"] == 1


def _script_info(app):
    from flask.cli import ScriptInfo

    return ScriptInfo(create_app=lambda: app)

"""Browser tests: Playwright driving Debian's Chromium against the app on a local port.

The app runs in a thread (werkzeug) on the test database with CSRF on, as in production.
No request leaves the machine: every URL that is not the local server is aborted.
Chromium missing: the tests skip, or fail in CI (PARTNERNET_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("PARTNERNET_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
#: Set to 1 to refresh the README's screenshots in docs/screenshots/.
WRITE_SCREENSHOTS = os.environ.get("PARTNERNET_SCREENSHOTS") == "1"


def _missing(why: str) -> None:
    if os.environ.get("PARTNERNET_REQUIRE_SERVICES") == "1":
        pytest.fail(f"browser tests need {why} (PARTNERNET_REQUIRE_SERVICES=1); run .ci/install-browser")
    pytest.skip(f"browser tests need {why}: run .ci/install-browser (apt-get install chromium)")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package (pip install -e '.[dev]')")
    if not os.path.exists(CHROMIUM):
        _missing(f"Chromium at {CHROMIUM}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(app_factory: Any) -> Iterator[Any]:
    """The app served on 127.0.0.1:<free port> from a thread; ``live.url``, ``live.app``."""
    from werkzeug.serving import make_server

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = app_factory(WTF_CSRF_ENABLED=True, BASE_URL=url)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ctx = app.app_context()
    ctx.push()
    try:
        yield type("Live", (), {"url": url, "app": app})
    finally:
        ctx.pop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def new_page(browser: Any, live: Any) -> Iterator[Any]:
    """``new_page(width, height)``: a fresh browser context (own cookies) that can reach only the app."""
    contexts: list[Any] = []

    def make(width: int = 1280, height: int = 800) -> Any:
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=live.url)
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(live.url)
                      else route.abort())
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15000)
        return page

    yield make
    for context in contexts:
        context.close()


def shoot(page: Any, name: str, tmp_path: Path) -> Path:
    """A screenshot: into docs/screenshots/ when refreshing them, else into the test's tmp dir."""
    target = (SCREENSHOTS if WRITE_SCREENSHOTS else tmp_path) / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=False)
    return target

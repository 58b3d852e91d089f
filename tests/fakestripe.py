"""A local fake of the Stripe API, enough for Connect payouts, spoken over real HTTP.

A ``ThreadingHTTPServer`` on 127.0.0.1 in a daemon thread. The real ``stripe`` library
talks to it through ``STRIPE_API_BASE``. It keeps:

- accounts (``POST/GET /v1/accounts``), account links (``POST /v1/account_links``),
- transfers (``POST /v1/transfers``, ``GET /v1/transfers`` filtered by
  ``transfer_group`` / ``destination`` / ``created[gte]`` with ``starting_after``
  paging, ``GET /v1/transfers/<id>``), with metadata and transfer_group,
- idempotency keys like Stripe: the same key with the same parameters replays the
  first answer; the same key with other parameters is a 400 ``idempotency_error``;
  ``forget_idempotency_keys()`` plays the 24-hour expiry.

Faults are queued per route with ``fail_next(route, mode)``:

- ``"500_after_commit"`` — make the transfer, answer 500 (a lost answer);
- ``"drop_after_commit"`` — make the transfer, close the socket without answering;
- ``"hang_after_commit"`` — make the transfer, then hold the answer until
  ``release()`` (or ``hang_seconds``): the client times out or gets killed;
- ``"timeout"`` — hold the request without doing anything, then drop it;
- ``"429"``, ``"400"``, ``"500"`` — answer that status without doing anything (a
  ``"400"`` for a key Stripe already ran is a replay of its first answer instead).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding (``metadata[payout_id]=7``, ``a[b][c]=x``) into nested dicts."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class FakeStripe:
    """State and switches of the fake; ``url`` is the base to give ``STRIPE_API_BASE``."""

    def __init__(self, hang_seconds: float = 10.0) -> None:
        self.lock = threading.RLock()
        self.accounts: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.account_links: list[dict[str, Any]] = []
        self.idempotency: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = {}
        self.faults: dict[str, list[str]] = defaultdict(list)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.hang_seconds = hang_seconds
        self.released = threading.Event()
        self.refuse_transfers: dict[str, str] = {}  # destination → error message
        self._seq = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeStripe:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    # -- switches ----------------------------------------------------------------------------

    def fail_next(self, route: str, mode: str, times: int = 1) -> None:
        """Queue ``times`` faults for the next requests to ``route`` (e.g. ``"POST /v1/transfers"``)."""
        with self.lock:
            self.faults[route].extend([mode] * times)

    def release(self) -> None:
        """Let hanging requests go on (they then drop their connection)."""
        self.released.set()

    def forget_idempotency_keys(self) -> None:
        """Play Stripe's 24-hour expiry of idempotency keys."""
        with self.lock:
            self.idempotency.clear()

    def add_account(self, payouts_enabled: bool = True, **fields: Any) -> str:
        """An existing connected account (as if onboarded); returns its id."""
        with self.lock:
            acct = self._new_account({}, payouts_enabled=payouts_enabled, **fields)
            return str(acct["id"])

    def transfers_for(self, payout_id: int) -> list[dict[str, Any]]:
        """Every transfer whose metadata names the payout."""
        with self.lock:
            return [t for t in self.transfers.values()
                    if str(t["metadata"].get("payout_id")) == str(payout_id)]

    def post_count(self, path: str) -> int:
        return sum(1 for method, p, _ in self.requests if method == "POST" and p == path)

    # -- objects -------------------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_{self._seq:06d}{secrets.token_hex(4)}"

    def _new_account(self, params: dict[str, Any], payouts_enabled: bool = False,
                     **fields: Any) -> dict[str, Any]:
        acct = {"id": self._id("acct"), "object": "account", "created": int(time.time()),
                "email": params.get("email"), "country": params.get("country", "US"),
                "controller": params.get("controller", {}),
                "capabilities": {"transfers": "inactive"},
                "metadata": params.get("metadata", {}), "payouts_enabled": payouts_enabled,
                "charges_enabled": False, "details_submitted": payouts_enabled,
                "requirements": {"currently_due": [] if payouts_enabled else ["external_account"],
                                 "disabled_reason": None if payouts_enabled else "requirements.past_due"}}
        acct.update(fields)
        self.accounts[acct["id"]] = acct
        return acct

    # -- routes ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, Any], params: dict[str, Any],
               headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/v1/transfers":
            return self._create_transfer(params)
        if method == "GET" and path == "/v1/transfers":
            return self._list_transfers(query)
        if method == "GET" and path.startswith("/v1/transfers/"):
            transfer = self.transfers.get(path.rsplit("/", 1)[1])
            return (200, transfer) if transfer else _error(404, "resource_missing", "No such transfer")
        if method == "POST" and path == "/v1/accounts":
            return 200, self._new_account(params)
        if method == "GET" and path.startswith("/v1/accounts/"):
            acct = self.accounts.get(path.rsplit("/", 1)[1])
            return (200, acct) if acct else _error(404, "resource_missing", "No such account")
        if method == "POST" and path == "/v1/account_links":
            if params.get("account") not in self.accounts:
                return _error(400, "resource_missing", "No such account")
            link = {"object": "account_link", "created": int(time.time()),
                    "expires_at": int(time.time()) + 300,
                    "url": f"https://connect.stripe.test/setup/e/{params['account']}/"
                           f"{secrets.token_urlsafe(16)}"}
            self.account_links.append({"params": params, **link})
            return 200, link
        return _error(404, "unknown_route", f"{method} {path} is not faked")

    def _create_transfer(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        destination = params.get("destination")
        if destination not in self.accounts:
            return _error(400, "resource_missing", f"No such destination: '{destination}'")
        if destination in self.refuse_transfers:
            return _error(400, "account_invalid", self.refuse_transfers[destination])
        if not str(params.get("amount", "")).isdigit() or int(params["amount"]) <= 0:
            return _error(400, "parameter_invalid_integer", "Invalid positive integer")
        transfer = {"id": self._id("tr"), "object": "transfer", "amount": int(params["amount"]),
                    "currency": params.get("currency"), "destination": destination,
                    "transfer_group": params.get("transfer_group"),
                    "metadata": params.get("metadata", {}), "created": int(time.time()),
                    "reversed": False, "amount_reversed": 0}
        self.transfers[transfer["id"]] = transfer
        return 200, transfer

    def _list_transfers(self, query: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        items = sorted(self.transfers.values(), key=lambda t: t["id"], reverse=True)
        if query.get("transfer_group"):
            items = [t for t in items if t["transfer_group"] == query["transfer_group"]]
        if query.get("destination"):
            items = [t for t in items if t["destination"] == query["destination"]]
        gte = (query.get("created") or {}).get("gte") if isinstance(query.get("created"), dict) else None
        if gte:
            items = [t for t in items if t["created"] >= int(gte)]
        if query.get("starting_after"):
            ids = [t["id"] for t in items]
            start = ids.index(query["starting_after"]) + 1 if query["starting_after"] in ids else len(ids)
            items = items[start:]
        limit = int(query.get("limit") or 10)
        return 200, {"object": "list", "url": "/v1/transfers", "has_more": len(items) > limit,
                     "data": items[:limit]}

    # -- HTTP --------------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self, method: str) -> None:
                split = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                params = decode_form(body)
                query = decode_form(split.query)
                headers = {k.lower(): v for k, v in self.headers.items()}
                route = f"{method} {split.path}"
                with fake.lock:
                    fake.requests.append((method, split.path, headers))
                    fault = fake.faults[route].pop(0) if fake.faults.get(route) else None
                if not headers.get("authorization", "").startswith("Bearer sk_"):
                    return self._send(*_error(401, "invalid_api_key", "Invalid API Key provided"))
                key = headers.get("idempotency-key") if method == "POST" else None
                if fault == "400" and key is not None and key in fake.idempotency:
                    # A refusal is the outcome of running the request; a key that already
                    # ran replays its first answer instead (as Stripe does).
                    fault = None
                if fault in ("429", "400", "500"):
                    status = int(fault)
                    code = {429: "rate_limit", 400: "account_invalid", 500: "api_error"}[status]
                    return self._send(*_error(status, code, f"fake {status}"))
                if fault == "timeout":
                    fake.released.wait(fake.hang_seconds)
                    return self._drop()
                with fake.lock:
                    if key is not None and key in fake.idempotency:
                        seen_route, seen_params, status, answer = fake.idempotency[key]
                        if seen_route != route or seen_params != params:
                            status, answer = _error(
                                400, None, "Keys for idempotent requests can only be used with "
                                "the same parameters they were first used with.",
                                type_="idempotency_error")
                            return self._send(status, answer)
                        replay = True
                    else:
                        status, answer = fake.handle(method, split.path, query, params, headers)
                        if key is not None and status < 500:
                            fake.idempotency[key] = (route, params, status, answer)
                        replay = False
                if fault == "500_after_commit":
                    return self._send(*_error(500, "api_error", "fake 500 after commit"))
                if fault == "drop_after_commit":
                    return self._drop()
                if fault == "hang_after_commit":
                    fake.released.wait(fake.hang_seconds)
                    return self._drop()
                self._send(status, answer, replay=replay)

            def _drop(self) -> None:
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass

            def _send(self, status: int, payload: dict[str, Any], replay: bool = False) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{secrets.token_hex(6)}")
                if replay:
                    self.send_header("Idempotent-Replayed", "true")
                if status == 500:
                    # Real Stripe says whether a retry is safe; the fake lets the client decide.
                    pass
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

        return Handler


def _error(status: int, code: str | None, message: str,
           type_: str = "invalid_request_error") -> tuple[int, dict[str, Any]]:
    if status == 429:
        type_ = "invalid_request_error"
    elif status >= 500:
        type_ = "api_error"
    error: dict[str, Any] = {"type": type_, "message": message}
    if code:
        error["code"] = code
    return status, {"error": error}


def sign_payload(payload: str, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header for ``payload``, as Stripe signs webhooks."""
    import hashlib
    import hmac

    ts = int(time.time()) if timestamp is None else timestamp
    sig = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={sig}"

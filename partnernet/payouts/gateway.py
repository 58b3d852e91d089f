"""The payment gateway, chosen by config: Stripe Connect (the real ``stripe`` library) or manual.

``STRIPE_SECRET_KEY`` set → :class:`StripeGateway` (one ``stripe.StripeClient`` per app,
pointed at ``STRIPE_API_BASE``, so tests aim the real library at a local fake server).
Not set → :class:`ManualGateway`: every payout goes on the manual (CSV) rail.

Outcomes of a transfer call are sorted into three kinds, because only one of them
may return money to a balance:

- :class:`TransferSent` — Stripe answered with the transfer.
- :class:`OutcomeUnknown` — timeout, dropped connection, 5xx, 429, 409, idempotency
  conflict, bad API key: the transfer may or may not exist. The payout stays
  ``processing`` and is retried later with the *same* idempotency key.
- :class:`TransferRefused` — a definite 4xx refusal (account not ready, insufficient
  funds): no transfer was made; the payout may be failed and its items released.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stripe
from flask import Flask, current_app

log = logging.getLogger(__name__)


class _NoStripeBodies(logging.Filter):
    """Drop the library's DEBUG records of request and response bodies: they carry
    Account Link URLs (bearer tokens) and partners' personal data."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        return not ("API response body" in text or "Post details" in text)


logging.getLogger("stripe").addFilter(_NoStripeBodies())


class OutcomeUnknown(Exception):
    """The call may or may not have made the transfer: retry with the same key later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransferRefused(Exception):
    """Stripe definitely refused the call (4xx): nothing was created."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class TransferSent:
    transfer_id: str
    amount_minor: int
    currency: str


class Pacer:
    """Keep under ``rate`` requests per second across this process (and across workers
    when Redis is configured), and stall every caller after a 429.

    Stripe's live-mode limit is 100 requests/s in general and lower per endpoint; the
    default of 20/s leaves room for the rest of the platform. A 429 sets a shared
    "back off until" moment so that no thread keeps hammering.
    https://docs.stripe.com/rate-limits
    """

    def __init__(self, rate: float, redis_conn: Any = None, key_prefix: str = "pn:",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = max(float(rate), 0.001)
        self.redis = redis_conn
        self.key = f"{key_prefix}stripe:pace"
        self.sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._blocked_until = 0.0

    def wait(self) -> None:
        """Block until this caller may send one request."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_slot, self._blocked_until)
            self._next_slot = start + 1.0 / self.rate
        if start > now:
            self.sleep(start - now)
        if self.redis is not None:
            self._wait_shared()

    def _wait_shared(self) -> None:
        # A fixed one-second window shared by every worker: INCR the window's counter;
        # over the limit → sleep into the next window and try again.
        limit = max(int(self.rate), 1)
        for _ in range(50):
            now = time.time()
            window = int(now)
            try:
                key = f"{self.key}:{window}"
                count = self.redis.incr(key)
                if count == 1:
                    self.redis.expire(key, 5)
            except Exception:  # noqa: BLE001 - Redis down: the in-process pacing still holds
                return
            if count <= limit:
                return
            self.sleep(window + 1 - now)

    def backoff(self, seconds: float) -> None:
        """After a 429: nobody in this process sends before ``seconds`` from now."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)


class ManualGateway:
    """No payment provider: payouts go on the manual rail (CSV export, marked paid)."""

    name = "manual"

    def create_transfer(self, **_: Any) -> TransferSent:  # pragma: no cover - never routed here
        raise TransferRefused("Stripe is not configured; use the manual rail.", "not_configured")


class StripeGateway:
    """Stripe Connect through one ``stripe.StripeClient``, paced, 429-aware."""

    name = "stripe"

    def __init__(self, api_key: str, api_base: str, *, max_network_retries: int, timeout: float,
                 rate: float, rate_limit_retries: int = 3, redis_conn: Any = None,
                 key_prefix: str = "pn:") -> None:
        # Verified against stripe 14.x: StripeClient(api_key, *, base_addresses=...,
        # max_network_retries=..., http_client=...). The library's default is *no*
        # network retry; its own retries reuse the same Idempotency-Key.
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base, "connect": api_base},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )
        self.pacer = Pacer(rate, redis_conn, key_prefix)
        self.rate_limit_retries = rate_limit_retries

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, func: Callable[[], Any]) -> Any:
        """Pace, call, and map the library's errors onto unknown / refused outcomes."""
        delay = 0.5
        for attempt in range(self.rate_limit_retries + 1):
            self.pacer.wait()
            try:
                return func()
            except stripe.RateLimitError as exc:
                # 429: nothing was done; back off (whole process) and try again.
                retry_after = _retry_after(exc) or delay
                self.pacer.backoff(retry_after)
                delay = min(delay * 2, 8.0)
                if attempt == self.rate_limit_retries:
                    raise OutcomeUnknown("rate limited by Stripe (429)", retry_after=retry_after) from exc
            except stripe.IdempotencyError as exc:
                # Same key, other parameters: our frozen parameters make this a bug or
                # a concurrent request; the first request may well have paid. Never fail.
                raise OutcomeUnknown(f"idempotency conflict: {exc.user_message or exc}") from exc
            except (stripe.APIConnectionError, stripe.APIError) as exc:
                raise OutcomeUnknown(f"{type(exc).__name__}: {exc.user_message or exc}") from exc
            except stripe.AuthenticationError as exc:
                # Our key is wrong: the call was not made, but the payout is fine; fix the
                # configuration and the retry will go through.
                raise OutcomeUnknown("Stripe rejected the API key") from exc
            except stripe.StripeError as exc:
                status = exc.http_status or 0
                if status == 409 or status >= 500 or status == 0:
                    raise OutcomeUnknown(f"{type(exc).__name__}: {exc.user_message or exc}") from exc
                raise TransferRefused(exc.user_message or str(exc), exc.code) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- transfers ----------------------------------------------------------------------

    def create_transfer(self, *, amount_minor: int, currency: str, destination: str,
                        transfer_group: str, metadata: dict[str, str],
                        idempotency_key: str) -> TransferSent:
        """``POST /v1/transfers`` with the payout's frozen parameters and its own key."""
        params: dict[str, Any] = {
            "amount": amount_minor, "currency": currency.lower(), "destination": destination,
            "transfer_group": transfer_group, "metadata": metadata,
        }
        transfer = self._call(lambda: self.client.v1.transfers.create(
            params=params, options={"idempotency_key": idempotency_key}))  # type: ignore[arg-type]
        return TransferSent(transfer.id, int(transfer.amount), str(transfer.currency).upper())

    def find_transfer(self, transfer_group: str, payout_id: int) -> TransferSent | None:
        """The transfer already made for this payout, found by group and metadata, or None."""
        page = self._call(lambda: self.client.v1.transfers.list(
            params={"transfer_group": transfer_group, "limit": 100}))
        for transfer in page.auto_paging_iter():
            if str((transfer.metadata or {}).get("payout_id")) == str(payout_id):
                return TransferSent(transfer.id, int(transfer.amount), str(transfer.currency).upper())
        return None

    def transfers_in_group(self, transfer_group: str) -> list[Any]:
        """Every transfer of a transfer group (reconciliation)."""
        page = self._call(lambda: self.client.v1.transfers.list(
            params={"transfer_group": transfer_group, "limit": 100}))
        return list(page.auto_paging_iter())

    def list_transfers(self, created_gte: int | None = None) -> list[Any]:
        """Every transfer (optionally created at or after a unix time): reconciliation."""
        params: dict[str, Any] = {"limit": 100}
        if created_gte is not None:
            params["created"] = {"gte": created_gte}
        page = self._call(lambda: self.client.v1.transfers.list(params=params))  # type: ignore[arg-type]
        return list(page.auto_paging_iter())

    # -- Connect onboarding -----------------------------------------------------------------

    def create_account(self, *, email: str, country: str | None, partner_id: int,
                       idempotency_key: str) -> Any:
        """Create a connected account with the Express experience via controller properties.

        Stripe calls ``type=express`` a legacy parameter; the same experience is set with
        controller properties: Stripe collects requirements and hosts onboarding and a
        light ("express") dashboard, the platform pays Stripe's fees and is liable for
        negative balances. https://docs.stripe.com/connect/migrate-to-controller-properties
        """
        params: dict[str, Any] = {
            "email": email,
            "controller": {
                "fees": {"payer": "application"},
                "losses": {"payments": "application"},
                "stripe_dashboard": {"type": "express"},
                "requirement_collection": "stripe",
            },
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"partner_id": str(partner_id)},
        }
        if country:
            params["country"] = country
        return self._call(lambda: self.client.v1.accounts.create(
            params=params, options={"idempotency_key": idempotency_key}))  # type: ignore[arg-type]

    def create_account_link(self, *, account_id: str, refresh_url: str, return_url: str) -> Any:
        """A fresh, single-use onboarding URL (a bearer token: never log or store it)."""
        return self._call(lambda: self.client.v1.account_links.create(params={
            "account": account_id, "refresh_url": refresh_url, "return_url": return_url,
            "type": "account_onboarding"}))


def _retry_after(exc: stripe.StripeError) -> float | None:
    headers = exc.headers or {}
    value = headers.get("retry-after") or headers.get("Retry-After")
    try:
        return float(value) if value else None
    except ValueError:
        return None


def build_gateway(app: Flask) -> StripeGateway | ManualGateway:
    """The gateway the config asks for (cached on the app)."""
    ext = app.extensions.setdefault("partnernet", {})
    gateway: StripeGateway | ManualGateway | None = ext.get("payout_gateway")
    if gateway is None:
        key = app.config.get("STRIPE_SECRET_KEY")
        if key:
            from partnernet.jobs import redis_connection

            gateway = StripeGateway(
                key, app.config.get("STRIPE_API_BASE") or "https://api.stripe.com",
                max_network_retries=int(app.config.get("STRIPE_MAX_NETWORK_RETRIES", 2)),
                timeout=float(app.config.get("STRIPE_TIMEOUT_SECONDS", 30)),
                rate=float(app.config.get("STRIPE_MAX_REQUESTS_PER_SECOND", 20)),
                rate_limit_retries=int(app.config.get("STRIPE_RATE_LIMIT_RETRIES", 3)),
                redis_conn=redis_connection(app),
                key_prefix=app.config.get("REDIS_KEY_PREFIX", "pn:"),
            )
        else:
            gateway = ManualGateway()
        ext["payout_gateway"] = gateway
    return gateway


def gateway() -> StripeGateway | ManualGateway:
    """The current app's gateway."""
    return build_gateway(current_app._get_current_object())  # type: ignore[attr-defined]


def stripe_enabled() -> bool:
    """Whether payouts may use the Stripe rail in this deployment."""
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))

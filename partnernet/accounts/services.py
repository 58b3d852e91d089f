"""Accounts: merchants and their owners, partners, API keys, password login."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from partnernet import clock, tokens
from partnernet.accounts.exceptions import (
    EmailTaken,
    InvalidApiKey,
    PartnerAlreadyInProgram,
    PartnerNotFound,
)
from partnernet.accounts.models import ApiKey, Merchant, Partner, User
from partnernet.audit import audit
from partnernet.extensions import db
from partnernet.money import normalize_currency
from partnernet.offers.models import Membership

LOCKOUT_AFTER = 5
LOCKOUT_FOR = timedelta(minutes=15)


@dataclass
class NewMerchant:
    merchant: Merchant
    owner: User
    api_key: str
    postback_token: str
    postback_secret: str


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively."""
    return email.strip().lower()


def hash_password(password: str) -> str:
    """Slow, salted hash (werkzeug scrypt) of a password."""
    return generate_password_hash(password)


def _user_email_taken(email: str) -> bool:
    return db.session.scalar(select(User.id).where(User.email == email)) is not None


def issue_postback_credentials(merchant: Merchant) -> tuple[str, str]:
    """Give the merchant a new postback token and HMAC secret; returns both (shown once)."""
    token = tokens.new_secret("pbt_")
    secret = tokens.new_secret("pbs_", 32)
    merchant.postback_token_hash = tokens.hash_secret(token)
    merchant.postback_token_prefix = token[:10]
    merchant.postback_secret = secret
    return token, secret


def issue_api_key(*, merchant_id: int | None = None, partner_id: int | None = None,
                  name: str = "default") -> str:
    """Create an API key and return it; only its hash is stored, so it is shown once."""
    key = tokens.new_secret("pn_")
    db.session.add(ApiKey(merchant_id=merchant_id, partner_id=partner_id, name=name,
                          prefix=key[:10], key_hash=tokens.hash_secret(key)))
    return key


def create_merchant(name: str, email: str, password: str | None = None,
                    currency: str = "USD") -> NewMerchant:
    """Create a merchant, its owner user, an API key and postback credentials. Commits."""
    email = normalize_email(email)
    currency = normalize_currency(currency)
    if _user_email_taken(email):
        raise EmailTaken()
    merchant = Merchant(name=name.strip(), currency=currency)
    token, secret = issue_postback_credentials(merchant)
    db.session.add(merchant)
    db.session.flush()
    owner = User(email=email, role="merchant", merchant_id=merchant.id,
                 password_hash=hash_password(password) if password else None)
    db.session.add(owner)
    key = issue_api_key(merchant_id=merchant.id)
    db.session.commit()
    return NewMerchant(merchant, owner, key, token, secret)


def authenticate_api_key(key: str | None) -> ApiKey:
    """The live API key for a bearer secret, or ``InvalidApiKey``."""
    if not key:
        raise InvalidApiKey()
    row = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == tokens.hash_secret(key)))
    if row is None or row.revoked_at is not None:
        raise InvalidApiKey()
    return row


def revoke_api_key(merchant_id: int, key_id: int) -> None:
    """Revoke one of the merchant's API keys. Commits."""
    row = db.session.scalar(select(ApiKey).where(ApiKey.id == key_id,
                                                 ApiKey.merchant_id == merchant_id))
    if row is None:
        raise InvalidApiKey("No such API key.", status_code=404, code="not_found")
    row.revoked_at = clock.now()
    audit("api_key_revoked", merchant_id=merchant_id, key_prefix=row.prefix)
    db.session.commit()


def verify_login(email: str, password: str) -> User | None:
    """The user for an email and password, counting failures and locking out after 5."""
    user: User | None = db.session.scalar(select(User).where(User.email == normalize_email(email)))
    now = clock.now()
    if user is None or not user.password_hash:
        # Same work either way, so timing does not reveal which emails exist.
        check_password_hash(_DUMMY_HASH, password)
        audit("login_failed", persist=False, email=email, reason="unknown")
        return None
    if user.locked_until is not None and user.locked_until > now:
        audit("login_refused_locked", user_id=user.id, merchant_id=user.merchant_id)
        db.session.commit()
        return None
    if not check_password_hash(user.password_hash, password) or not user.is_active:
        _count_failure(user, now, "login_failed")
        return None
    user.failed_logins = 0
    user.locked_until = None
    audit("login", user_id=user.id, merchant_id=user.merchant_id)
    db.session.commit()
    return user


_DUMMY_HASH = generate_password_hash("not-a-real-password")


def _count_failure(user: User, now: datetime, event: str) -> None:
    """A wrong password (login or fresh login): counted, and the account locked for
    ``LOCKOUT_FOR`` after ``LOCKOUT_AFTER`` in a row. Commits (the audit event with it)."""
    user.failed_logins += 1
    if user.failed_logins >= LOCKOUT_AFTER:
        user.locked_until = now + LOCKOUT_FOR
        user.failed_logins = 0
        audit("account_locked", user_id=user.id, merchant_id=user.merchant_id)
    audit(event, user_id=user.id, merchant_id=user.merchant_id)
    db.session.commit()


def load_user(session_id: str) -> User | None:
    """Flask-Login loader: ``<user id>:<session version>``; a stale version is logged out."""
    user_id, _, version = session_id.partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user


def end_sessions(user: User) -> None:
    """Invalidate every session cookie of the user (logout everywhere). Commits."""
    user.session_version += 1
    db.session.commit()


def reauthenticate(user: User, password: str) -> bool:
    """Check the logged-in user's password again (fresh login); failures count toward the lockout.

    Commits (the failure counter or the audit event)."""
    now = clock.now()
    if user.locked_until is not None and user.locked_until > now:
        audit("reauth_refused_locked", user_id=user.id, merchant_id=user.merchant_id)
        db.session.commit()
        return False
    if not user.password_hash or not check_password_hash(user.password_hash, password):
        _count_failure(user, now, "reauth_failed")
        return False
    user.failed_logins = 0
    audit("reauthenticated", user_id=user.id, merchant_id=user.merchant_id)
    db.session.commit()
    return True


def change_email(user: User, new_email: str) -> User:
    """Change the email a user logs in with (a partner's profile email follows). Commits.

    The caller has checked a fresh login; the audit event keeps only the domains."""
    email = normalize_email(new_email)
    if email == user.email:
        return user
    if _user_email_taken(email):
        raise EmailTaken()
    old = user.email
    partner = db.session.get(Partner, user.partner_id) if user.partner_id is not None else None
    if partner is not None and partner.email != old:
        partner = None  # the profile has an email of its own: leave it
    if partner is not None and db.session.scalar(select(Partner.id).where(
            Partner.email == email, Partner.id != partner.id)) is not None:
        raise EmailTaken()
    user.email = email
    if partner is not None:
        partner.email = email
    audit("email_changed", user_id=user.id, merchant_id=user.merchant_id,
          old_domain=old.rpartition("@")[2], new_domain=email.rpartition("@")[2])
    db.session.commit()
    return user


# -- partners -------------------------------------------------------------------------

def program_membership(merchant_id: int, partner_id: int) -> Membership | None:
    """The partner's membership in the merchant's program (not a single offer)."""
    return db.session.scalar(select(Membership).where(
        Membership.merchant_id == merchant_id, Membership.partner_id == partner_id,
        Membership.offer_id.is_(None)))


def create_partner(merchant_id: int, *, email: str, name: str, password: str | None = None,
                   status: str = "approved", channel_type: str = "other") -> tuple[Partner, Membership]:
    """Add a partner to the merchant's program, creating the partner if new. Commits.

    A partner already known to the network (another merchant's program) joins this
    program with the same account; one already in this program is a conflict.
    """
    email = normalize_email(email)
    partner = db.session.scalar(select(Partner).where(Partner.email == email))
    if partner is None:
        if _user_email_taken(email):
            raise EmailTaken()
        partner = Partner(name=name.strip(), email=email, channel_type=channel_type)
        db.session.add(partner)
        db.session.flush()
        db.session.add(User(email=email, role="partner", partner_id=partner.id,
                            password_hash=hash_password(password) if password else None))
    elif program_membership(merchant_id, partner.id) is not None:
        raise PartnerAlreadyInProgram()
    membership = Membership(merchant_id=merchant_id, partner_id=partner.id, status=status,
                            decided_at=clock.now() if status != "pending" else None)
    db.session.add(membership)
    db.session.commit()
    return partner, membership


def get_program_partner(merchant_id: int, partner_id: int) -> tuple[Partner, Membership]:
    """A partner of the merchant's program, or 404: other programs' partners do not exist here."""
    membership = program_membership(merchant_id, partner_id)
    if membership is None:
        raise PartnerNotFound()
    return membership.partner, membership


def update_partner(merchant_id: int, partner_id: int,
                   changes: dict[str, object]) -> tuple[Partner, Membership]:
    """Change a program partner's status (in this program) or profile fields. Commits."""
    partner, membership = get_program_partner(merchant_id, partner_id)
    if "status" in changes and changes["status"] != membership.status:
        membership.status = str(changes["status"])
        membership.decided_at = clock.now()
    for field in ("name", "channel_type", "postback_url"):
        if field in changes:
            setattr(partner, field, changes[field])
    db.session.commit()
    return partner, membership

"""Unbound extension singletons, bound to the app with ``init_app`` in the factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from marshmallow import Schema, fields
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Named constraints so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class _ErrorDetail(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict()


class ErrorSchema(Schema):
    """The contract's error shape, so the OpenAPI document describes what errors really look like."""

    error = fields.Nested(_ErrorDetail, required=True)


class PartnernetApi(Api):
    """flask-smorest's Api, with errors rendered by ``partnernet.errors`` instead."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:  # noqa: D401 - errors.py owns them
        return None


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
api = PartnernetApi()
limiter = Limiter(key_func=get_remote_address, default_limits=[])

# The models' base class. ``db.Model`` is made at run time, so mypy cannot take it as a base class
# (python/mypy#8603: it reports `Name "db.Model" is not defined` and types every model as Any).
# What the checker is given is what Flask-SQLAlchemy builds from ``Base``: its ``Model`` mixin
# (``query``, ``__fsa__``) on ``Base``'s declarative base, metadata and registry.
if TYPE_CHECKING:
    from flask_sqlalchemy.model import Model as _FSAModel
    from sqlalchemy import Table

    class Model(_FSAModel, Base):
        #: Every model names its ``__tablename__``, so it maps a Table (DeclarativeBase
        #: declares the wider FromClause, which Core's insert()/update() do not accept).
        __table__: ClassVar[Table]
else:
    Model = db.Model


_T = TypeVar("_T")


def app_state(app: Any, namespace: str, name: str, factory: Callable[[], _T]) -> _T:
    """The app's one instance of a per-process object (a cache, a connection's state), kept in
    ``app.extensions[namespace][name]`` and made by ``factory`` on first use; two threads that
    race to make it end up sharing the first one stored."""
    ext = app.extensions.setdefault(namespace, {})
    found = ext.get(name)
    if found is None:
        found = ext.setdefault(name, factory())
    return found  # type: ignore[no-any-return]

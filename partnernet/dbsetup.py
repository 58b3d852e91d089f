"""Database objects that the models cannot declare (triggers, partitions).

``install(engine)`` is called by the migrations that create them and by the test
schema builder, so both paths end with the same database.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Engine

#: Each feature appends a callable taking the engine (a connection is opened inside).
INSTALLERS: list[Callable[[Engine], None]] = []


def install(engine: Engine) -> None:
    """Run every feature's installer against ``engine``."""
    for installer in INSTALLERS:
        installer(engine)
